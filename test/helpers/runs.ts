import type { SyncMode, SyncModuleName, SyncRunRow } from '../../src/sync/sync.tables.js';
import type { Stack } from './stack.js';
import { waitFor } from './wait.js';

const FINISHED = ['succeeded', 'partial', 'failed', 'cancelled'];

/** Waits until a run has finished (in any way) and returns its row. */
export async function finishedRun(stack: Stack, id: string, timeoutMs = 25_000): Promise<SyncRunRow> {
  return waitFor(async () => {
    const r = await stack.larksync.services.sync.get(id);
    return r && FINISHED.includes(r.status) ? r : undefined;
  }, timeoutMs, `run ${id} to finish`);
}

/** Triggers a module's run (or joins the active one) and waits for it to finish. */
export async function runToEnd(stack: Stack, tenantKey: string, module: SyncModuleName, mode: SyncMode, timeoutMs?: number): Promise<SyncRunRow> {
  const { run } = await stack.larksync.services.sync.trigger(tenantKey, module, mode, 'api');
  return finishedRun(stack, run.id, timeoutMs);
}
