import type pg from 'pg';
import { sql } from 'kysely';
import type { TestDatabase } from './db.js';

/**
 * graphile-worker's add_job, on the test's pool or on a client whose transaction is open; a null
 * queue adds a job in no queue, `runAt` one not yet due.
 */
export async function addJob(c: pg.ClientBase | TestDatabase, task: string, queue: string | null, opts: { runAt?: Date } = {}): Promise<void> {
  const runAt = opts.runAt ?? null;
  if ('db' in c) await sql`select graphile_worker.add_job(${task}, '{}'::json, queue_name := ${queue}, run_at := ${runAt})`.execute(c.db);
  else await c.query(`select graphile_worker.add_job($1, '{}'::json, queue_name := $2, run_at := $3)`, [task, queue, runAt]);
}

/** Every job and queue gone: each case starts from none. */
export async function clearJobs(test: TestDatabase): Promise<void> {
  await sql`delete from graphile_worker._private_jobs`.execute(test.db);
  await sql`delete from graphile_worker._private_job_queues`.execute(test.db);
}
