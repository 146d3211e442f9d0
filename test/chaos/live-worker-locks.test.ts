import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { WorkerFleet } from '../helpers/worker-fleet.js';
import { finishedRun } from '../helpers/runs.js';

/**
 * graphile-worker 0.17 locks jobs and queues under its *pool* id (`pool-…`: batchGetJobs(…,
 * workerPool.id, …)), not under its workers' ids. larksync releases the locks of workers that
 * stopped beating (src/worker/worker-processes.ts, unlockDeadWorkers); when it beat only the
 * worker ids, every lock older than deadWorkerAfterMs looked dead and was released while its
 * job was still running, so a slice longer than that (production: 15 s, with 20 s slices) ran a
 * second time at once under the same lease: every page read and counted twice. This test runs
 * one long slice in one live process with the threshold far below the slice's length, and checks
 * that the lock is left alone and each page is read and counted once.
 */
describe('locks of a live worker process', () => {
  let stack: Stack;
  let fleet: WorkerFleet;
  const TENANT = 'tenant-live-lock';
  let searchPath = '';
  let records = 0;

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, data: { enforceRateLimits: false } });
    await whenReady(stack);
    const bitable = stack.data.bitable(TENANT, { projects: 4_000, ledger: 0, tasks: 0, events: 0 });
    const { appToken, projects } = bitable.refs.main;
    records = bitable.table(appToken, projects).count;
    searchPath = `/open-apis/bitable/v1/apps/${appToken}/tables/${projects}/records/search`;
    await openTenant(stack, TENANT);
    await stack.larksync.services.connectors.put(TENANT, 'base', { enabled: false, config: { tables: [{ appToken, tableId: projects }] } }, 'store');
    await stack.larksync.worker?.stop();
    fleet = new WorkerFleet(stack.env, stack.db.db, 1, {
      // One slice for the whole run (~4 s of slow pages), a dead-worker threshold of 1.5 s, and
      // no stale-run resume: the only actor is the lock release of a process that is alive.
      workerOptions: { cron: false, maintenanceMs: 200, staleRunAfterMs: 60_000, deadWorkerAfterMs: 1_500 },
      engineOptions: { heartbeatMs: 300, sliceMs: 60_000 },
      rateLimitScale: 50,
      workerPollInterval: 100,
    });
    await fleet.fill();
  }, 60_000);

  afterAll(async () => {
    await fleet?.stop();
    await stack?.stop();
  });

  it('are never released while the process beats: a slice outliving deadWorkerAfterMs runs once', async () => {
    stack.sim.injectFault({ path: searchPath, delayMs: 500, count: 1_000 });
    const { run } = await stack.larksync.services.sync.trigger(TENANT, 'base', 'full', 'api');
    const done = await finishedRun(stack, run.id, 60_000);
    stack.sim.clearFaults();
    const [proc] = fleet.alive;
    const released = (proc?.output.join('') ?? '').split('\n').filter((l) => l.includes('released jobs held by dead workers'));
    const jobsLeft = await sql<{ n: number }>`select count(*)::int as n from graphile_worker._private_jobs`.execute(stack.db.db);
    console.log(
      `live-lock: run ${done.status}, ${done.pages} pages, counts ${JSON.stringify(done.counts)} for ${records} records, ` +
        `${stack.sim.count(searchPath)} search calls for ${Math.ceil(records / 500)} pages, ${released.length} lock releases of the live process, ` +
        `${jobsLeft.rows[0]?.n} jobs left`,
    );
    expect(done.status).toBe('succeeded');
    expect(released, 'the live process had its own locks released as dead').toEqual([]);
    expect(stack.sim.count(searchPath)).toBe(Math.ceil(records / 500));
    expect(done.counts.base_records).toBe(records);
  }, 90_000);
});
