import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

/**
 * Whether another job of the given tasks (or, with `except`, of any other task) is ready to run
 * and could be taken now: available (not locked, attempts left), due, and in no queue or in a
 * queue nobody holds. A slice whose time is up gives its slot to such a job; with none waiting it
 * goes on in the same job. A shard's drain asks it too (`except` the slices' and lanes' tasks).
 *
 * Why not always queue the next slice: the next slice of a run sits in the run's tenant queue,
 * which the finishing job still holds when it adds it, so graphile-worker's "job added"
 * notification finds nothing to take and the slice waits for the next poll (pollInterval, 2 s):
 * a paced 300,000-record Base sync lost 1.5 s of its 33 s at its one slice boundary this way.
 */
export async function otherJobsWaiting(db: Kysely<Database>, tasks: readonly string[], opts: { except?: boolean } = {}): Promise<boolean> {
  const task = opts.except ? sql`t.identifier <> all(${[...tasks]}::text[])` : sql`t.identifier = any(${[...tasks]}::text[])`;
  const res = await sql<{ waiting: boolean }>`
    select exists (
      select 1 from graphile_worker._private_jobs j
        join graphile_worker._private_tasks t on t.id = j.task_id
        left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
       where ${task}
         and j.is_available and j.run_at <= now()
         and (j.job_queue_id is null or q.locked_at is null)
    ) as waiting`.execute(db);
  return res.rows[0]?.waiting ?? false;
}
