/**
 * The minute's change-event health check at scale (`npm run bench -- subscriptions`):
 * BENCH_SUBS_TENANTS tenants (default 5,000), each with approval, base and contact connectors
 * (15,000 connectors), their subscriptions made, two finished runs per connector, and
 * BENCH_SUBS_EVENTS stored events (default 200,000) spread over them. Measured, median of
 * BENCH_SUBS_ROUNDS rounds (default 5): the steady minute's health check (scan of one minute of new
 * events at 200/s = 12,000, every connector judged, due retries looked for) against the baseline,
 * the scheduler's own minute tick (scheduleDue, which now also reads the verdicts); and the first
 * scan of the whole events table (a start after an upgrade).
 */
import { sql } from 'kysely';
import { connectDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { SyncService } from '../src/sync/sync.service.js';
import { refreshConnectorHealth, scanEventMarks } from '../src/subscriptions/event-health.js';
import { queueDueSubscriptionJobs } from '../src/subscriptions/queue.js';
import { dropDatabase, freshDatabase } from './bench-db.js';
import { percentile, reproduce, type BenchResult } from './report.js';
import type { BenchEnv } from './run.js';

const KNOBS = ['BENCH_SUBS_TENANTS', 'BENCH_SUBS_EVENTS', 'BENCH_SUBS_ROUNDS', 'BENCH_DATABASE_URL'];
const EVENT_TYPES = ['approval_instance', 'drive.file.bitable_record_changed_v1', 'contact.user.updated_v3', 'drive.file.edit_v1'];

const ms = async (f: () => Promise<unknown>): Promise<number> => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};

export async function benchSubscriptions(env: BenchEnv): Promise<BenchResult> {
  const tenants = Number(process.env.BENCH_SUBS_TENANTS ?? 5_000);
  const events = Number(process.env.BENCH_SUBS_EVENTS ?? 200_000);
  const rounds = Number(process.env.BENCH_SUBS_ROUNDS ?? 5);
  const perMinute = 12_000;
  const url = await freshDatabase(env.admin);
  const handle = connectDatabase(url, { max: 4, applicationName: 'larksync-bench-subs' });
  const { db } = handle;
  try {
    await migrateToLatest(db, url);
    await sql`insert into apps (app_id, kind, domain, secret_sealed) values ('cli_bench_subs', 'store', 'feishu', '\\x00')`.execute(db);
    await sql`insert into tenants (tenant_key, app_id, status) select 't' || i, 'cli_bench_subs', 'active' from generate_series(1, ${tenants}) i`.execute(db);
    await sql`insert into connectors (tenant_key, module, enabled, interval_minutes, config)
              select 't' || i, m, true, 60, '{}'::jsonb from generate_series(1, ${tenants}) i, unnest(array['approval', 'base', 'contact']) m`.execute(db);
    await sql`insert into lark_subscriptions (tenant_key, module, object_token, object_type, status, subscribed_at)
              select 't' || i, m, m || '-obj-' || k, case m when 'approval' then 'approval' else 'bitable' end, 'subscribed', now()
                from generate_series(1, ${tenants}) i, unnest(array['approval', 'base']) m, generate_series(1, 2) k`.execute(db);
    await sql`insert into sync_runs (tenant_key, module, mode, trigger, status, counts, created_at, started_at, finished_at, rows_changed)
              select 't' || i, m, 'incremental', 'schedule', 'succeeded', '{}', now() - (k || ' minutes')::interval, now() - (k || ' minutes')::interval,
                     now() - (k || ' minutes')::interval, k % 2
                from generate_series(1, ${tenants}) i, unnest(array['approval', 'base', 'contact']) m, generate_series(30, 31) k`.execute(db);
    const addEvents = (n: number, offset: number) =>
      sql`insert into lark_events (event_id, app_id, schema_version, event_type, tenant_key, payload_sealed, status)
          select 'ev-' || (${offset}::int + g), 'cli_bench_subs', 'v2', (${EVENT_TYPES}::text[])[1 + g % ${EVENT_TYPES.length}],
                 't' || (1 + g % ${tenants}), '\\x00', 'processed'
            from generate_series(1, ${n}) g`.execute(db);
    await addEvents(events, 0);
    await sql`analyze`.execute(db);

    const firstScanMs = await ms(() => scanEventMarks(db));
    await scanEventMarks(db); // the overlap pass
    const sync = new SyncService(db);
    const health: number[] = [];
    const schedule: number[] = [];
    let offset = events;
    let verdicts = { healthy: 0, gaps: 0 };
    for (let r = 0; r < rounds; r += 1) {
      await addEvents(perMinute, offset);
      offset += perMinute;
      health.push(
        await ms(async () => {
          await scanEventMarks(db);
          verdicts = await refreshConnectorHealth(db);
          await queueDueSubscriptionJobs(db);
        }),
      );
      // The tick creates no run (every connector ran 30 min ago), so each round measures the same work.
      schedule.push(await ms(() => sync.scheduleDue({})));
    }
    const med = (xs: number[]) => Math.round(percentile(xs, 50));
    const healthMs = med(health);
    const scheduleMs = med(schedule);
    return {
      name: 'subscriptions',
      title: `Change-event health check, ${tenants.toLocaleString('en-US')} tenants × 3 connectors, ${events.toLocaleString('en-US')} stored events`,
      command: reproduce('subscriptions', KNOBS),
      baseline: "the scheduler's own minute tick (scheduleDue over the same connectors), measured in the same run",
      figures: [
        { figure: 'health check per minute (scan 12,000 new events, judge every connector, due retries)', unit: 'ms', larksync: healthMs, baseline: scheduleMs, goal: 'well under a minute' , met: healthMs < 60_000 },
        { figure: 'first scan of the whole events table', unit: 'ms', larksync: Math.round(firstScanMs), baseline: null },
        { figure: 'connectors judged healthy', unit: 'connectors', larksync: verdicts.healthy, baseline: null },
      ],
      details: { tenants, events, rounds, health, schedule, gaps: verdicts.gaps },
    };
  } finally {
    await handle.close();
    await dropDatabase(env.admin, url).catch(() => undefined);
  }
}
