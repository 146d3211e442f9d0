import { sql, type Kysely } from 'kysely';
import { up as sqlHorizon } from './2026_12_07_1100_feed_horizon.js';

// Frozen in time: never import application code here (an earlier migration is frozen too).
//
// feed_horizon() as before (2026_12_07_1100_feed_horizon), made cheap. The records feed, the
// webhook lanes and the sinks call it once per read, and as a SQL function its body was parsed
// and planned again at every call (the pg_stat_activity view expands into a join of
// pg_stat_get_activity, pg_database and pg_authid): 0.3 ms of Postgres per call when idle, about
// 2.5 calls per change event in `npm run bench -- realtime`. In PL/pgSQL the plan is kept for the
// session, and a snapshot with no transaction in progress (xmin = xmax) answers at once.
// Semantics unchanged: an in-progress id is skipped only when its backend is positively in
// another database of this server; unknown ids (hidden by privileges, a backend without a
// database, ended meanwhile) hold the horizon back. STABLE: it runs in the calling statement's
// snapshot, as the SQL function did.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function feed_horizon() returns xid8 language plpgsql stable as $$
    declare
      snap pg_snapshot := pg_current_snapshot();
      horizon xid8;
    begin
      if pg_snapshot_xmin(snap) = pg_snapshot_xmax(snap) then
        return pg_snapshot_xmax(snap);
      end if;
      select min(x) into horizon
        from pg_snapshot_xip(snap) x
       where not exists (select 1 from pg_stat_get_activity(null) a
                          join pg_database d on d.oid = a.datid
                         where a.backend_xid = x::xid and d.datname <> current_database());
      return coalesce(horizon, pg_snapshot_xmax(snap));
    end
    $$`.execute(db);
}

// Back to the SQL function, as the migration that made it wrote it.
export const down = sqlHorizon;
