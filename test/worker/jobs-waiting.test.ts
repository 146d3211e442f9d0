import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { otherJobsWaiting } from '../../src/worker/slice-turns.js';
import { NOT_URGENT_TASKS } from '../../src/worker/tasks.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addJob, clearJobs } from '../helpers/graphile-jobs.js';

// A sync slice gives its slot up when another slice waits; a shard's drain stops reading on when
// any other job of the urgent runner waits (everything but slices and webhook lanes): both ask
// otherJobsWaiting, which reads graphile-worker's tables as its get_job would.
describe('jobs waiting for a slot', () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(async () => {
    await test?.drop();
  });
  afterEach(() => clearJobs(test));

  const urgentWaiting = () => otherJobsWaiting(test.db, NOT_URGENT_TASKS, { except: true });

  it("counts another shard's drain or the token refresh for the urgent runner, not slices, lanes or jobs not yet due", async () => {
    await addJob(test, 'sync_run', 'tenant:a');
    await addJob(test, 'deliver_webhooks', 'webhook:1:a');
    await addJob(test, 'drain_lark_events', 'lark-events:3', { runAt: new Date(Date.now() + 3_600_000) });
    expect(await urgentWaiting()).toBe(false);
    expect(await otherJobsWaiting(test.db, ['sync_run'])).toBe(true);
    await addJob(test, 'drain_lark_events', 'lark-events:2');
    expect(await urgentWaiting()).toBe(true);
    await sql`delete from graphile_worker._private_jobs where task_id = (select id from graphile_worker._private_tasks where identifier = 'drain_lark_events')`.execute(test.db);
    await addJob(test, 'refresh_tokens', null);
    expect(await urgentWaiting()).toBe(true);
  });

  it("does not count the next job of a queue a running job holds (a drain's own shard)", async () => {
    await addJob(test, 'drain_lark_events', 'lark-events:5');
    await sql`update graphile_worker._private_job_queues set locked_at = now(), locked_by = 'a-worker' where queue_name = 'lark-events:5'`.execute(test.db);
    expect(await urgentWaiting()).toBe(false);
  });
});
