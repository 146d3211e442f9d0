import { hostname } from 'node:os';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

export type { WorkerProcessesTable } from './worker-processes.table.js';

/** A worker silent for this long is dead (its process was killed or lost its database). */
export const DEAD_AFTER_MS = 15_000;

export async function heartbeatWorkers(db: Kysely<Database>, workerIds: Iterable<string>): Promise<void> {
  const rows = [...workerIds].map((worker_id) => ({ worker_id, pid: process.pid, hostname: hostname(), heartbeat_at: sql<Date>`now()` }));
  if (rows.length === 0) return;
  await db
    .insertInto('worker_processes')
    .values(rows)
    .onConflict((oc) => oc.column('worker_id').doUpdateSet({ heartbeat_at: sql<Date>`now()` }))
    .execute();
}

export async function forgetWorkers(db: Kysely<Database>, workerIds: Iterable<string>): Promise<void> {
  const ids = [...workerIds];
  if (ids.length > 0) await db.deleteFrom('worker_processes').where('worker_id', 'in', ids).execute();
}

/**
 * Releases jobs and named queues held by workers that stopped heart-beating, so their jobs run
 * again (every larksync task is safe to repeat) and their tenant's queue moves on. Locks taken in
 * the last DEAD_AFTER_MS are left alone: their worker may not have sent its first beat yet.
 */
export async function unlockDeadWorkers(db: Kysely<Database>, deadAfterMs = DEAD_AFTER_MS): Promise<string[]> {
  const secs = deadAfterMs / 1000;
  const dead = await sql<{ locked_by: string }>`
    select distinct locked_by from (
      select locked_by, locked_at from graphile_worker._private_jobs where locked_by is not null
      union all
      select locked_by, locked_at from graphile_worker._private_job_queues where locked_by is not null
    ) l
    where l.locked_at < now() - make_interval(secs => ${secs})
      and not exists (
        select 1 from worker_processes w
         where w.worker_id = l.locked_by and w.heartbeat_at > now() - make_interval(secs => ${secs}))`.execute(db);
  const ids = dead.rows.map((r) => r.locked_by);
  if (ids.length > 0) await sql`select graphile_worker.force_unlock_workers(${ids}::text[])`.execute(db);
  await db.deleteFrom('worker_processes').where('heartbeat_at', '<', sql<Date>`now() - interval '1 hour'`).execute();
  return ids;
}
