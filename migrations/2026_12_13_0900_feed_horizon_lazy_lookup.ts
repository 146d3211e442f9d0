import { sql, type Kysely } from 'kysely';
import { up as cachedPlanHorizon } from './2026_12_11_0900_feed_horizon_cached_plan.js';

// Frozen in time: never import application code here (an earlier migration is frozen too).
//
// feed_horizon() with the same guarantee, without reading pg_stat_activity at every call. Every
// feed read and webhook head calls it, and that lookup copies the status of every backend slot of
// the server, retrying a slot whose backend is midway through updating it: under load on two
// cores one lookup took up to 13 ms (auto_explain, `npm run bench -- realtime` at 100 changes/s),
// and a delivered webhook attempt's statement 0.86 to 1.10 ms, against 0.44 to 0.67 ms without it.
//
// The lookup only ever moves the horizon *up*, past ids that belong to another database (see
// 2026_12_07_1100_feed_horizon): without it the horizon is the oldest in-progress id, which is
// always safe, only possibly late. So the function now answers that at once, and looks up only
// when one id has held this session's horizon for `larksync.feed_horizon_check_ms` (default
// 100 ms; 0 looks up at every call, as before: the tests' databases, whose files run side by side
// on one server and read their feeds right after writing). Ids the lookup placed in another
// database are remembered for the session (an id's database never changes) and skipped from then
// on without a lookup. A long transaction in another database therefore delays each session's
// feed by at most that interval, once; the usual oldest id, a short transaction of this database,
// changes long before the interval ends.
//
// The memo lives in session settings (set_config): a rolled-back transaction takes its changes
// back, which only means looking up again. The lookup is a function of its own, so that its
// calls can be counted (track_functions).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function feed_horizon_foreign(snap pg_snapshot) returns xid8[] language plpgsql stable as $$
    begin
      -- As 2026_12_11_0900: positively in another database; unknown ids count as ours.
      return coalesce((
        select array_agg(x)
          from pg_snapshot_xip(snap) x
         where exists (select 1 from pg_stat_get_activity(null) a
                        join pg_database d on d.oid = a.datid
                       where a.backend_xid = x::xid and d.datname <> current_database())), '{}');
    end
    $$`.execute(db);
  await sql`
    create or replace function feed_horizon() returns xid8 language plpgsql stable as $$
    declare
      snap pg_snapshot := pg_current_snapshot();
      check_ms bigint := coalesce(nullif(current_setting('larksync.feed_horizon_check_ms', true), ''), '100')::bigint;
      foreign_ids xid8[];
      held text;
      oldest xid8;
      now_ms bigint;
    begin
      if pg_snapshot_xmin(snap) = pg_snapshot_xmax(snap) then
        return pg_snapshot_xmax(snap);
      end if;
      -- 0 or less: look up at every call (the horizon 2026_12_11_0900 gave).
      if check_ms > 0 then
        foreign_ids := coalesce(nullif(current_setting('larksync.feed_foreign_ids', true), ''), '{}')::xid8[];
        select min(x) into oldest from pg_snapshot_xip(snap) x where x <> all(foreign_ids);
        if oldest is null then
          return pg_snapshot_xmax(snap);
        end if;
        -- 'id@ms': the id holding this session's horizon, and since when (clock time, not the transaction's).
        held := current_setting('larksync.feed_horizon_held', true);
        now_ms := floor(extract(epoch from clock_timestamp()) * 1000);
        if held is null or split_part(held, '@', 1) <> oldest::text then
          perform set_config('larksync.feed_horizon_held', oldest::text || '@' || now_ms::text, false);
          return oldest;
        end if;
        if now_ms - split_part(held, '@', 2)::bigint < check_ms then
          return oldest;
        end if;
      end if;
      -- One id has held the horizon for the interval: is it (or any other open id) another database's?
      foreign_ids := feed_horizon_foreign(snap);
      select min(x) into oldest from pg_snapshot_xip(snap) x where x <> all(foreign_ids);
      if check_ms > 0 then
        perform set_config('larksync.feed_foreign_ids', foreign_ids::text, false);
        -- The interval starts again for the id now holding the horizon (a long one of ours is looked at again then).
        perform set_config('larksync.feed_horizon_held', coalesce(oldest::text, '') || '@' || now_ms::text, false);
      end if;
      return coalesce(oldest, pg_snapshot_xmax(snap));
    end
    $$`.execute(db);
}

// Back to the function as 2026_12_11_0900 wrote it.
export async function down(db: Kysely<any>): Promise<void> {
  await cachedPlanHorizon(db);
  await sql`drop function if exists feed_horizon_foreign(pg_snapshot)`.execute(db);
}
