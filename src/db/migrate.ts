import { Migrator, sql, type Kysely, type MigrationProvider } from 'kysely';
import { Logger, runMigrations as runWorkerMigrations } from 'graphile-worker';
import { migrations } from '../../migrations/index.js';

const provider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export const silentWorkerLogger = new Logger(() => () => undefined);

/**
 * Brings the schema to the latest version: our tables (kysely Migrator, which takes a lock so
 * replicas can start together) and graphile-worker's queue schema. Running it twice changes nothing.
 */
export async function migrateToLatest(db: Kysely<any>, connectionString: string): Promise<string[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${reason}`);
  }
  await runWorkerMigrations({ connectionString, logger: silentWorkerLogger });
  await planAddJobsPerCall(db);
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/**
 * graphile-worker's add_jobs (plpgsql) always runs an UPDATE joining the jobs table to the new
 * specs, to clear job keys. A pool connection plans it once and keeps that plan: planned while the
 * jobs table is empty (a fresh database, or one autovacuum found drained), it is a hash join over a
 * sequential scan of every job. Then each enqueue reads the whole backlog, and the event endpoint
 * slows down as the backlog grows, just when it grows fastest: storing batches of 22 events with
 * the worker off, Postgres's CPU per event rose from 38 to 147 µs over 66,000 events. Planning
 * each call for the table as it is then (an index lookup once it has rows) adds about 0.2 ms per
 * call and stays flat (44 µs per event throughout). Checked after every worker migration, since a
 * graphile-worker release may replace the function.
 */
async function planAddJobsPerCall(db: Kysely<any>): Promise<void> {
  // Replicas start together: concurrent ALTERs of one pg_proc row fail with "tuple concurrently
  // updated", so one at a time, and only when it is not set yet.
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('larksync:add_jobs_plan_cache_mode'))`.execute(trx);
    const { rows } = await sql<{ set: boolean }>`
      select coalesce('plan_cache_mode=force_custom_plan' = any(proconfig), false) as set
        from pg_proc where oid = 'graphile_worker.add_jobs(graphile_worker.job_spec[], boolean)'::regprocedure`.execute(trx);
    if (rows[0]?.set) return;
    await sql`alter function graphile_worker.add_jobs(graphile_worker.job_spec[], boolean) set plan_cache_mode = force_custom_plan`.execute(trx);
  });
}
