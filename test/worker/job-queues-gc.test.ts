import pg from 'pg';
import { sql } from 'kysely';
import { run, type Runner } from 'graphile-worker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentWorkerLogger } from '../../src/db/migrate.js';
import { collectEmptyJobQueues } from '../../src/worker/job-queues-gc.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addJob, clearJobs } from '../helpers/graphile-jobs.js';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

async function queueNames(test: TestDatabase): Promise<string[]> {
  const { rows } = await sql<{ queue_name: string }>`select queue_name from graphile_worker._private_job_queues order by queue_name`.execute(test.db);
  return rows.map((r) => r.queue_name);
}

/** Jobs naming a queue whose row is gone: graphile-worker would never take them. */
async function orphans(test: TestDatabase): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from graphile_worker._private_jobs j
     where j.job_queue_id is not null
       and not exists (select 1 from graphile_worker._private_job_queues q where q.id = j.job_queue_id)`.execute(test.db);
  return rows[0]!.n;
}

describe('collecting empty graphile-worker queues', () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(async () => {
    await test?.drop();
  });
  // Each case starts from no job and no queue.
  afterEach(() => clearJobs(test));

  it('deletes the queues that hold no job and are not locked, and keeps the others', async () => {
    for (const q of ['gc:busy', 'gc:empty-1', 'gc:empty-2', 'gc:locked']) await addJob(test, 'gc_task', q);
    // A finished job leaves its queue's row behind (graphile-worker deletes only the job).
    await sql`delete from graphile_worker._private_jobs j using graphile_worker._private_job_queues q
               where q.id = j.job_queue_id and q.queue_name <> 'gc:busy'`.execute(test.db);
    // A queue a worker holds (its job just finished, the unlock not yet committed elsewhere).
    await sql`update graphile_worker._private_job_queues set locked_at = now(), locked_by = 'w-1' where queue_name = 'gc:locked'`.execute(test.db);
    expect(await queueNames(test)).toEqual(['gc:busy', 'gc:empty-1', 'gc:empty-2', 'gc:locked']);

    expect(await collectEmptyJobQueues(test.db)).toBe(2);
    expect(await queueNames(test)).toEqual(['gc:busy', 'gc:locked']);
    expect(await collectEmptyJobQueues(test.db)).toBe(0);
  });

  it('never deletes the queue of a job being added: the collection waits for its transaction or gives up', async () => {
    await addJob(test, 'gc_task', 'gc:race');
    await sql`delete from graphile_worker._private_jobs`.execute(test.db);
    expect(await queueNames(test)).toEqual(['gc:race']);

    // add_job finds the queue's row (ON CONFLICT DO NOTHING locks no row) and inserts its job; the
    // transaction is still open when the collection comes.
    const adder = new pg.Client({ connectionString: test.url });
    await adder.connect();
    try {
      await adder.query('begin');
      await addJob(adder, 'gc_task', 'gc:race');

      const started = Date.now();
      expect(await collectEmptyJobQueues(test.db, 200)).toBe('busy');
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(await queueNames(test)).toEqual(['gc:race']);

      // Waiting on the lock, the collection sees the job once the adder commits.
      const collecting = collectEmptyJobQueues(test.db, 5_000);
      await new Promise((r) => setTimeout(r, 200));
      await adder.query('commit');
      expect(await collecting).toBe(0);
    } finally {
      await adder.end();
    }
    expect(await queueNames(test)).toEqual(['gc:race']);
    expect(await orphans(test)).toBe(0);
  });

  it('a job added to a collected queue is taken and run (its row comes back with it)', async () => {
    const ran: string[] = [];
    let runner: Runner | undefined;
    try {
      runner = await run({
        connectionString: test.url,
        concurrency: 2,
        pollInterval: 100,
        noHandleSignals: true,
        logger: silentWorkerLogger,
        crontab: '',
        taskList: { gc_task: async (payload) => void ran.push((payload as { n: string }).n) },
      });
      await sql`select graphile_worker.add_job('gc_task', json_build_object('n', 'first'), queue_name := 'gc:lane')`.execute(test.db);
      await waitFor(async () => ran.length === 1 && (await sql`select 1 from graphile_worker._private_jobs`.execute(test.db)).rows.length === 0, 10_000, 'the first job done');
      await waitFor(async () => (await collectEmptyJobQueues(test.db)) === 1, 10_000, 'the empty queue collected');
      expect(await queueNames(test)).toEqual([]);

      await sql`select graphile_worker.add_job('gc_task', json_build_object('n', 'second'), queue_name := 'gc:lane')`.execute(test.db);
      await waitFor(async () => ran.length === 2, 10_000, 'the second job run');
      expect(ran).toEqual(['first', 'second']);
      expect(await orphans(test)).toBe(0);
    } finally {
      await runner?.stop();
    }
  });
});

describe("the worker's maintenance collects them", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ start: { workerOptions: { cron: false, maintenanceMs: 300 } } });
    await whenReady(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('the queue of a drained event shard is gone once its job is done, and the events after it are handled', async () => {
    const queues = async () =>
      (await sql<{ queue_name: string; jobs: number }>`
        select q.queue_name, (select count(*)::int from graphile_worker._private_jobs j where j.job_queue_id = q.id) as jobs
          from graphile_worker._private_job_queues q`.execute(stack.db.db)).rows;
    const seen = new Set<string>();
    let push = await stack.sim.appOpen(STORE_APP.appId, 'tenant-gc-1');
    expect(push.status).toBe(200);
    await waitFor(async () => {
      for (const q of await queues()) seen.add(q.queue_name);
      return stack.larksync.services.tenants.get('tenant-gc-1');
    }, 5_000, 'the app_open handled');
    // The drain ran under a named queue, whose row graphile-worker keeps after the job.
    expect(seen.size).toBeGreaterThan(0);
    await waitFor(async () => (await queues()).every((q) => q.jobs > 0), 5_000, 'every queue left holds a job');

    push = await stack.sim.appOpen(STORE_APP.appId, 'tenant-gc-2');
    expect(push.status).toBe(200);
    await waitFor(() => stack.larksync.services.tenants.get('tenant-gc-2'), 5_000, 'an event handled after the queues were collected');
  });
});
