import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { WorkerFleet } from '../helpers/worker-fleet.js';
import { waitFor } from '../helpers/wait.js';
import { RESEAL_TASK } from '../../src/worker/tasks.js';

const USERS = '/open-apis/contact/v3/users/find_by_department';
const TENANT = 'tenant-fleet-holders';

/**
 * The chaos tests kill whichever process holds a run's job, found through the worker pool ids
 * each process announces. A process runs three pools (sync slices, urgent jobs, webhook lanes):
 * one whose first job was not a slice must still be known as the holder of the slices it runs.
 */
describe('a worker fleet tells which process holds a sync job', () => {
  let stack: Stack;
  let fleet: WorkerFleet | undefined;
  beforeAll(async () => {
    stack = await startStack({ encrypt: false, data: { enforceRateLimits: false } });
    await whenReady(stack);
    await openTenant(stack, TENANT);
    await stack.larksync.services.connectors.put(TENANT, 'contact', { enabled: false, config: {} }, 'store');
  }, 60_000);
  afterAll(async () => {
    stack?.sim.clearFaults();
    await fleet?.stop();
    await stack?.stop();
  });

  it('even when the process ran an urgent job before its first slice', async () => {
    await stack.larksync.worker?.stop();
    fleet = new WorkerFleet(stack.env, stack.db.db, 1);
    await fleet.fill();
    // An urgent job first (the re-seal a process queues at start during a key rotation).
    await sql`select graphile_worker.add_job(${RESEAL_TASK}, '{}'::json)`.execute(stack.db.db);
    await waitFor(() => fleet!.logCount('re-sealed every sealed value') > 0 || undefined, 15_000, 'the urgent job to run');
    stack.sim.injectFault({ path: USERS, delayMs: 500, count: 1_000_000 });
    const { run } = await stack.larksync.services.sync.trigger(TENANT, 'contact', 'full', 'api');
    const holder = await waitFor(async () => (await fleet!.holders()).find((h) => h.runId === run.id), 15_000, 'the process holding the run to be known');
    expect(holder.proc).toBe(fleet.alive[0]);
  }, 60_000);
});
