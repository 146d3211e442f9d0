import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { WorkerFleet } from '../helpers/worker-fleet.js';
import { waitFor } from '../helpers/wait.js';
import { RESEAL_TASK } from '../../src/worker/tasks.js';

const USERS = '/open-apis/contact/v3/users/find_by_department';
const TENANT = 'tenant-fleet-holders';

/**
 * The chaos tests kill whichever process holds a run's job, found through the worker pool ids
 * each process announces. A process runs three pools (sync slices, urgent jobs, webhook lanes),
 * and a run's slices follow one another in one job while nothing else waits: a process whose slice
 * goes unseen can finish the run unkilled.
 */
describe('a worker fleet tells which process holds a sync job', () => {
  let stack: Stack;
  let fleet: WorkerFleet | undefined;
  beforeAll(async () => {
    stack = await startStack({ encrypt: false, data: { enforceRateLimits: false } });
    await whenReady(stack);
    await openTenant(stack, TENANT);
    await stack.larksync.services.connectors.put(TENANT, 'contact', { enabled: false, config: {} }, 'store');
    await stack.larksync.worker?.stop();
  }, 60_000);
  afterEach(async () => {
    stack.sim.clearFaults();
    await fleet?.stop();
    fleet = undefined;
    // Whatever run is left is over: the next test's run must not queue behind it.
    await sql`update sync_runs set status = 'cancelled', finished_at = now() where status in ('queued', 'running')`.execute(stack.db.db);
    await sql`delete from graphile_worker._private_jobs`.execute(stack.db.db);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  async function holderOf(runId: string) {
    return waitFor(async () => (await fleet!.holders()).find((h) => h.runId === runId), 15_000, 'the process holding the run to be known');
  }

  it('when the process took the job while it was still starting', async () => {
    // Queued before any process runs: a process's sync runner takes it as soon as it starts.
    stack.sim.injectFault({ path: USERS, delayMs: 500, count: 1_000_000 });
    const { run } = await stack.larksync.services.sync.trigger(TENANT, 'contact', 'full', 'api');
    fleet = new WorkerFleet(stack.env, stack.db.db, 1);
    await fleet.fill();
    expect((await holderOf(run.id)).proc).toBe(fleet.alive[0]);
  }, 60_000);

  it('when the process ran an urgent job before its first slice', async () => {
    fleet = new WorkerFleet(stack.env, stack.db.db, 1);
    await fleet.fill();
    // An urgent job first (the re-seal a process queues at start during a key rotation).
    await sql`select graphile_worker.add_job(${RESEAL_TASK}, '{}'::json)`.execute(stack.db.db);
    await waitFor(() => fleet!.logCount('re-sealed every sealed value') > 0 || undefined, 15_000, 'the urgent job to run');
    stack.sim.injectFault({ path: USERS, delayMs: 500, count: 1_000_000 });
    const { run } = await stack.larksync.services.sync.trigger(TENANT, 'contact', 'full', 'api');
    expect((await holderOf(run.id)).proc).toBe(fleet.alive[0]);
  }, 60_000);
});
