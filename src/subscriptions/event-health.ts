import { sql, type Kysely } from 'kysely';
import { systemClock, type Clock } from '../clock.js';
import type { Database } from '../db/database.js';
import { EVENT_MODULES, moduleOfEvent, needsSubscribeCalls } from './event-modules.js';

/**
 * Whether each connector's change events can be trusted, judged every minute (before the
 * scheduler, which stretches the polling interval of a healthy one):
 *
 * healthy = every subscription it needs is made (contact needs none) AND events of the module
 * arrived within `recentMs` AND no poll found changes after the events had been silent for longer
 * than `silentGapMs` (a poll that finds changes the events did not bring means events are being
 * lost). Any gap brings the normal interval back at the next tick, and shows as a lag: the time
 * since the copy was last known complete (the start of the last poll that succeeded).
 */
export interface HealthOptions {
  /** Events count as "recent" this long. */
  recentMs: number;
  /** A poll that finds changes more than this after the last event reveals a gap. */
  silentGapMs: number;
}

export const defaultHealthOptions: HealthOptions = {
  recentMs: 24 * 3_600_000,
  silentGapMs: 3_600_000,
};

export type GapReason =
  | 'subscription_refused'
  | 'subscription_failed'
  | 'not_subscribed'
  | 'no_events'
  | 'events_silent'
  | 'changes_missed';

export interface HealthFacts {
  module: string;
  subscriptions: { subscribed: number; pending: number; refused: number; failed: number };
  lastEventAt: Date | null;
  /** start of the last successful poll that changed rows */
  lastChangeFoundAt: Date | null;
  /** start of the last successful poll */
  lastPollAt: Date | null;
  connectorCreatedAt: Date;
}

export interface Verdict {
  healthy: boolean;
  reason: GapReason | null;
  behindSince: Date | null;
}

/** The rule above, as a pure function. */
export function judge(f: HealthFacts, now: Date, opts: HealthOptions): Verdict {
  const gap = (reason: GapReason): Verdict => ({ healthy: false, reason, behindSince: f.lastPollAt ?? f.connectorCreatedAt });
  if (needsSubscribeCalls(f.module)) {
    const s = f.subscriptions;
    if (s.refused > 0) return gap('subscription_refused');
    if (s.failed > 0) return gap('subscription_failed');
    if (s.pending > 0 || s.subscribed === 0) return gap('not_subscribed');
  }
  if (!f.lastEventAt) return gap('no_events');
  if (now.getTime() - f.lastEventAt.getTime() > opts.recentMs) return gap('events_silent');
  if (f.lastChangeFoundAt && f.lastChangeFoundAt.getTime() - f.lastEventAt.getTime() > opts.silentGapMs) return gap('changes_missed');
  return { healthy: true, reason: null, behindSince: null };
}

/**
 * Reads the events stored since the last scan into `lark_event_marks` (when each tenant's module
 * last heard from Lark). The scan starts at the watermark of the scan before the last one: an
 * event whose id was drawn before a higher one but committed after it is still seen (marks only
 * ever move forward, so reading a row twice is harmless).
 */
export async function scanEventMarks(db: Kysely<Database>): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const scan = await sql<{ last_id: string; prev_id: string }>`
      select last_id::text, prev_id::text from lark_event_mark_scan where id = 1 for update`.execute(trx);
    const from = scan.rows[0]?.prev_id ?? '0';
    const last = scan.rows[0]?.last_id ?? '0';
    const rows = await sql<{ tenant_key: string; event_type: string; at: Date; max_id: string }>`
      select tenant_key, event_type, max(received_at) as at, max(id)::text as max_id
        from lark_events where id > ${from}::bigint and tenant_key is not null
       group by tenant_key, event_type`.execute(trx);
    const marks = new Map<string, { tenant: string; module: string; at: Date }>();
    let maxId = BigInt(last);
    for (const r of rows.rows) {
      if (BigInt(r.max_id) > maxId) maxId = BigInt(r.max_id);
      const module = moduleOfEvent(r.event_type);
      if (!module) continue;
      const k = `${r.tenant_key}\u0000${module}`;
      const had = marks.get(k);
      if (!had || had.at < r.at) marks.set(k, { tenant: r.tenant_key, module, at: r.at });
    }
    const list = [...marks.values()];
    if (list.length > 0) {
      await sql`
        insert into lark_event_marks (tenant_key, module, last_event_at)
        select * from unnest(${list.map((m) => m.tenant)}::text[], ${list.map((m) => m.module)}::text[], ${list.map((m) => m.at.toISOString())}::timestamptz[])
        on conflict (tenant_key, module) do update set last_event_at = greatest(lark_event_marks.last_event_at, excluded.last_event_at)`.execute(trx);
    }
    await sql`update lark_event_mark_scan set prev_id = last_id, last_id = ${maxId.toString()}::bigint where id = 1`.execute(trx);
    return list.length;
  });
}

/** Judges every enabled connector of an active tenant whose module has events; returns how many are healthy. */
export async function refreshConnectorHealth(db: Kysely<Database>, opts: HealthOptions = defaultHealthOptions, clock: Clock = systemClock): Promise<{ healthy: number; gaps: number }> {
  const facts = await sql<{
    tenant_key: string;
    module: string;
    created_at: Date;
    last_event_at: Date | null;
    subscribed: number;
    pending: number;
    refused: number;
    failed: number;
    last_change_found_at: Date | null;
    last_poll_at: Date | null;
  }>`
    select c.tenant_key, c.module, c.created_at, m.last_event_at,
           coalesce(s.subscribed, 0)::int as subscribed, coalesce(s.pending, 0)::int as pending,
           coalesce(s.refused, 0)::int as refused, coalesce(s.failed, 0)::int as failed,
           -- The first poll that succeeded loaded the copy: its changes were never the events' to bring.
           (select max(r.started_at) from sync_runs r
             where r.tenant_key = c.tenant_key and r.module = c.module and r.status in ('succeeded', 'partial')
               and r.rows_changed > 0
               and r.started_at > (select min(f.started_at) from sync_runs f
                                    where f.tenant_key = c.tenant_key and f.module = c.module and f.status in ('succeeded', 'partial'))) as last_change_found_at,
           (select max(r.started_at) from sync_runs r
             where r.tenant_key = c.tenant_key and r.module = c.module and r.status in ('succeeded', 'partial')) as last_poll_at
      from connectors c
      join tenants t on t.tenant_key = c.tenant_key and t.status = 'active'
      left join lark_event_marks m on m.tenant_key = c.tenant_key and m.module = c.module
      left join lateral (
        select count(*) filter (where status = 'subscribed') as subscribed, count(*) filter (where status = 'pending') as pending,
               count(*) filter (where status = 'refused') as refused, count(*) filter (where status = 'failed') as failed
          from lark_subscriptions x where x.tenant_key = c.tenant_key and x.module = c.module and x.wanted) s on true
     where c.enabled and c.module = any(${[...EVENT_MODULES]}::text[])`.execute(db);
  const now = clock.now();
  const verdicts = facts.rows.map((f) => ({
    tenant: f.tenant_key,
    module: f.module,
    lastEventAt: f.last_event_at,
    ...judge(
      {
        module: f.module,
        subscriptions: { subscribed: f.subscribed, pending: f.pending, refused: f.refused, failed: f.failed },
        lastEventAt: f.last_event_at,
        lastChangeFoundAt: f.last_change_found_at,
        lastPollAt: f.last_poll_at,
        connectorCreatedAt: f.created_at,
      },
      now,
      opts,
    ),
  }));
  await db.transaction().execute(async (trx) => {
    await sql`delete from connector_event_health h where not (h.module || '/' || h.tenant_key = any(${verdicts.map((v) => `${v.module}/${v.tenant}`)}::text[]))`.execute(trx);
    if (verdicts.length === 0) return;
    await sql`
      insert into connector_event_health (tenant_key, module, healthy, gap_reason, behind_since, last_event_at, checked_at)
      select t, m, h, r, b, e, ${now.toISOString()}::timestamptz
        from unnest(${verdicts.map((v) => v.tenant)}::text[], ${verdicts.map((v) => v.module)}::text[], ${verdicts.map((v) => v.healthy)}::boolean[],
                    ${verdicts.map((v) => v.reason)}::text[], ${verdicts.map((v) => v.behindSince?.toISOString() ?? null)}::timestamptz[],
                    ${verdicts.map((v) => v.lastEventAt?.toISOString() ?? null)}::timestamptz[]) as x(t, m, h, r, b, e)
      on conflict (tenant_key, module) do update set healthy = excluded.healthy, gap_reason = excluded.gap_reason,
        behind_since = excluded.behind_since, last_event_at = excluded.last_event_at, checked_at = excluded.checked_at`.execute(trx);
  });
  const healthy = verdicts.filter((v) => v.healthy).length;
  return { healthy, gaps: verdicts.length - healthy };
}

/** The `/metrics` figures: per module, the largest lag among connectors in a gap, and how many are in one, by reason. */
export async function lagByModule(db: Kysely<Database>): Promise<Array<{ module: string; reason: string; connectors: number; maxLagSeconds: number }>> {
  const rows = await sql<{ module: string; reason: string; connectors: number; max_lag: number }>`
    select module, gap_reason as reason, count(*)::int as connectors,
           coalesce(max(extract(epoch from now() - behind_since)), 0)::float8 as max_lag
      from connector_event_health where not healthy group by module, gap_reason`.execute(db);
  return rows.rows.map((r) => ({ module: r.module, reason: r.reason, connectors: r.connectors, maxLagSeconds: Math.max(0, Math.round(r.max_lag)) }));
}
