import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
//
// The feed serves rows whose writing transaction lies below a horizon: every transaction below it
// has finished, so no row can appear behind a cursor already handed out. The snapshot's xmin is
// such a horizon, but it spans the whole server: a long transaction in *another* database (another
// application, another larksync on a shared Postgres, a test file running alongside) held every
// reader back for as long as it ran. Transaction ids are server-wide, yet only a transaction of
// this database can write our rows, so the horizon skips in-progress ids that pg_stat_activity
// positively places in another database. Unknown ids (hidden by privileges, or committed between
// the snapshot and the lookup) count as ours: holding back is always safe, serving early is not.
// The result is at most the snapshot's xmax, so nothing invisible to the statement is served.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function feed_horizon() returns xid8 language sql stable as $$
      select coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
        from pg_snapshot_xip(pg_current_snapshot()) x
       where not exists (select 1 from pg_stat_activity a
                          where a.backend_xid = x::xid and a.datname <> current_database())
    $$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function if exists feed_horizon()`.execute(db);
}
