import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

/**
 * How long the collection waits for graphile-worker's queue table: a job being added holds it
 * until its transaction commits, and while the collection waits, every get_job and add_job queues
 * behind it. Not had at once, it is left for the next round.
 */
export const GC_LOCK_TIMEOUT_MS = 50;

/**
 * Deletes graphile-worker's named queues that hold no job and are not locked.
 *
 * Why: larksync names a queue per webhook lane, per event shard and per tenant's syncs, so
 * hundreds exist, nearly all empty at any moment; graphile-worker keeps a queue's row after its
 * last job. Its get_job locks every available queue's row (`for update skip locked`) to pick one
 * job, so each call cost 0.3 to 0.8 ms with ~300 rows in `npm run bench -- realtime`, the heaviest
 * statement at 50 changes/s; and two get_job calls at once skip each other's locked queues and
 * can both come back empty while jobs wait. A queue's row comes back with its next job (add_job
 * inserts it when missing).
 *
 * Why the table lock: add_job inserts the queue's row (ON CONFLICT DO NOTHING, which locks no
 * existing row), then its job, and nothing references the queue (graphile-worker has no foreign
 * key there): a delete between the two would leave the job naming a queue that no longer exists,
 * never to be taken. SHARE ROW EXCLUSIVE conflicts with the ROW EXCLUSIVE lock that add_job's
 * insert holds until its transaction commits, so once the collection has the lock every job added
 * before is committed and seen by the delete, and every later add_job waits for it and inserts the
 * row anew. Rows another transaction has locked (a get_job choosing) are skipped, never waited for:
 * the collection waits on nothing but the table lock, whose wait is bounded.
 * graphile-worker's own `cleanup` (GC_JOB_QUEUES) runs the same delete without that lock.
 */
export async function collectEmptyJobQueues(db: Kysely<Database>, lockTimeoutMs = GC_LOCK_TIMEOUT_MS): Promise<number | 'busy'> {
  try {
    return await db.transaction().execute(async (trx) => {
      await sql`select set_config('lock_timeout', ${`${Math.max(1, Math.round(lockTimeoutMs))}ms`}, true)`.execute(trx);
      await sql`lock table graphile_worker._private_job_queues in share row exclusive mode`.execute(trx);
      const res = await sql`
        delete from graphile_worker._private_job_queues q
         where q.id in (
           select jq.id from graphile_worker._private_job_queues jq
            where jq.locked_at is null
              and not exists (select 1 from graphile_worker._private_jobs j where j.job_queue_id = jq.id)
              for update skip locked)`.execute(trx);
      return Number(res.numAffectedRows ?? 0n);
    });
  } catch (err) {
    // 55P03 lock_not_available: the table is in use; the next round collects.
    if ((err as { code?: string }).code === '55P03') return 'busy';
    throw err;
  }
}
