/**
 * The baseline of the many-tenants benchmark: larksync's two minute crons as they were before
 * refreshes and schedules were spread (git 8cc6a8c, src/tokens/tokens.service.ts refreshDue and
 * src/sync/sync.service.ts scheduleDue), copied here with now() replaced by the simulated clock:
 *  - refresh_tokens: at most 100 due tokens per tick, one after another, each refreshed 25 minutes
 *    before its expiry (the token service runs with a refresh window of width zero at 25 min);
 *  - schedule_syncs: a connector is due when its interval has elapsed since its last run.
 * Mints and run creation go through the same TokenService and SyncService as larksync's side.
 */
import { sql } from 'kysely';
import type { Clock } from '../src/clock.js';
import type { Services } from '../src/services.js';
import type { SyncModuleName } from '../src/sync/sync.tables.js';

/** The fixed margin larksync used: 25 minutes before expiry. */
export const BASELINE_REFRESH_WINDOW = { earliestLeftSeconds: 25 * 60, latestLeftSeconds: 25 * 60 };

export async function baselineRefreshDue(services: Services, clock: Clock, limit = 100): Promise<void> {
  const due = await services.db
    .selectFrom('access_tokens as t')
    .leftJoin('tenants as tn', (j) => j.onRef('tn.tenant_key', '=', 't.tenant_key').onRef('tn.app_id', '=', 't.app_id'))
    .select(['t.kind', 't.app_id', 't.tenant_key'])
    .where((eb) => eb.or([eb('t.refresh_at', '<=', clock.sql()), eb('t.token_sealed', 'is', null)]))
    .where((eb) => eb.or([eb('t.kind', '=', 'app'), eb('tn.status', '=', 'active')]))
    .orderBy('t.refresh_at', 'asc')
    .limit(limit)
    .execute();
  for (const row of due) {
    try {
      if (row.kind === 'app') await services.tokens.getAppAccessToken(row.app_id);
      else await services.tokens.getTenantAccessToken(row.tenant_key);
    } catch {
      // As before: logged and left for the next tick.
    }
  }
}

export async function baselineScheduleDue(services: Services, clock: Clock, fullPassEveryHours: Partial<Record<SyncModuleName, number>>): Promise<number> {
  const now = clock.sql();
  const due = await sql<{ tenant_key: string; module: SyncModuleName; last_full: Date | null }>`
    select c.tenant_key, c.module,
           (select max(r.created_at) from sync_runs r
             where r.tenant_key = c.tenant_key and r.module = c.module and r.mode = 'full' and r.status = 'succeeded') as last_full
      from connectors c
      join tenants t on t.tenant_key = c.tenant_key and t.status = 'active'
     where c.enabled
       and not exists (select 1 from sync_runs r where r.tenant_key = c.tenant_key and r.module = c.module and r.status in ('queued', 'running'))
       and coalesce((select max(r.created_at) from sync_runs r where r.tenant_key = c.tenant_key and r.module = c.module),
                    '-infinity'::timestamptz) < ${now} - make_interval(mins => c.interval_minutes)`.execute(services.db);
  let created = 0;
  for (const row of due.rows) {
    const period = fullPassEveryHours[row.module];
    const needsFull = period !== undefined && (!row.last_full || row.last_full.getTime() < clock.now().getTime() - period * 3_600_000);
    try {
      const res = await services.sync.trigger(row.tenant_key, row.module, needsFull ? 'full' : 'incremental', 'schedule');
      if (res.created) created += 1;
    } catch {
      // The tenant changed state meanwhile; the next tick looks again.
    }
  }
  return created;
}
