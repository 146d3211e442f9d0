import { expect } from 'vitest';
import type { WriteView } from '../../src/writes/writes.service.js';
import { startStack, whenReady, openTenant, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A stack whose simulator holds one tenant's Bases (its Orders table empty) with Lark's limits off
 * in the simulator: the writes tests' common start. `rateLimitScale` multiplies larksync's own
 * pacing; `latencyMs` is the simulator's time per write call.
 */
export async function stackWithOrders(
  tenant: string,
  opts: { rateLimitScale: number; latencyMs: number },
): Promise<{ stack: Stack; appToken: string; tableId: string }> {
  const stack = await startStack({
    encrypt: false,
    start: { rateLimitScale: opts.rateLimitScale },
    data: { enforceRateLimits: false, bitableWrites: { latencyMs: opts.latencyMs } },
  });
  await whenReady(stack);
  const bitable = stack.data.bitable(tenant, { projects: 5, ledger: 0, tasks: 0, events: 0, orders: 0 });
  await openTenant(stack, tenant);
  const { appToken, orders: tableId } = bitable.refs.main;
  return { stack, appToken, tableId };
}

/** POSTs a write for `tenant` (202 expected) and returns its id. */
export async function postWrite(stack: Stack, tenant: string, body: unknown): Promise<string> {
  const res = await stack.api('POST', `/api/v1/tenants/${tenant}/writes`, body);
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

/** The write once it has ended (and, with `readBack`, once its rows are all in base_records). */
export function writeEnded(stack: Stack, id: string, opts: { readBack?: boolean; timeoutMs?: number } = {}): Promise<WriteView> {
  return waitFor(
    async () => {
      const v = await stack.larksync.services.writes.get(id, { records: false });
      return v && !['queued', 'running'].includes(v.status) && (!opts.readBack || v.readBackPending === 0) ? v : undefined;
    },
    opts.timeoutMs ?? 30_000,
    opts.readBack ? `write ${id} and its read-back` : `write ${id}`,
  );
}
