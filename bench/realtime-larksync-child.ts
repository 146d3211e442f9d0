/**
 * larksync for the realtime benchmark: the production bootstrap with its HTTP endpoint (Lark's
 * pushes, the records API) and the worker (event handling, syncs, webhook deliveries), configured
 * by environment variables as `npm start` is. Crons are off, so no scheduled run adds calls the
 * benchmark would count; everything measured comes from the pushes. The parent installs the
 * tenants, registers the webhook and starts runs over IPC. Started by bench/realtime.ts.
 */
import { sql } from 'kysely';
import { pino } from 'pino';
import { startLarksync } from '../src/bootstrap.js';
import { loadConfig } from '../src/config/env.js';
import type { SyncMode, SyncModuleName } from '../src/sync/sync.tables.js';
import { serveParent } from './child-ipc.js';
import type { RealtimeTenant } from './realtime-sim-child.js';

const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1' });
const larksync = await startLarksync(config, {
  log: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
  workerOptions: { cron: false },
  rateLimitScale: Number(process.env.BENCH_RATE_LIMIT_SCALE ?? 1),
});
const s = larksync.services;

export interface RunSummary {
  id: string;
  tenant: string;
  module: string;
  status: string;
  error: string | null;
  seconds: number;
  upstreamCalls: number;
  counts: Record<string, number>;
}

async function summary(id: string): Promise<RunSummary | undefined> {
  const r = await s.sync.get(id);
  if (!r) return undefined;
  return {
    id,
    tenant: r.tenant_key,
    module: r.module,
    status: r.status,
    error: r.error_message,
    seconds: ((r.finished_at?.getTime() ?? Date.now()) - r.created_at.getTime()) / 1000,
    upstreamCalls: r.upstream_calls,
    counts: r.counts,
  };
}

async function waitAll(ids: string[], timeoutMs: number): Promise<RunSummary[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const runs = (await Promise.all(ids.map(summary))).filter((r) => r !== undefined);
    if (runs.every((r) => !['queued', 'running'].includes(r.status)) || Date.now() > until) return runs;
    await new Promise((res) => setTimeout(res, 200));
  }
}

serveParent(
  {
    url: async () => larksync.url,
    setup: async (a: { appId: string; ticket: string; tenants: RealtimeTenant[]; big: { tenant: string; appToken: string; tableId: string } }) => {
      await s.tickets.save(a.appId, a.ticket, new Date(), null);
      for (const t of a.tenants) {
        await s.tenants.install({ tenantKey: t.tenant, appId: a.appId }, null);
        await s.tokens.getTenantAccessToken(t.tenant);
        await s.connectors.put(t.tenant, 'contact', { enabled: true, config: {} }, 'store');
        await s.connectors.put(t.tenant, 'approval', { enabled: true, config: { approvalCodes: t.approvalCodes, backfillDays: 7 } }, 'store');
        await s.connectors.put(t.tenant, 'base', { enabled: true, config: { tables: [t.orders] } }, 'store');
      }
      await s.tenants.install({ tenantKey: a.big.tenant, appId: a.appId }, null);
      await s.tokens.getTenantAccessToken(a.big.tenant);
      await s.connectors.put(a.big.tenant, 'base', { enabled: true, config: { tables: [{ appToken: a.big.appToken, tableId: a.big.tableId }] } }, 'store');
    },
    /** A webhook for records.changed of every tenant; returns its signing secret (shown once). */
    webhook: async (url: string) => (await s.webhooks.create({ url, eventTypes: ['records.changed'] })).secret,
    /** Runs `mode` syncs of these (tenant, module) pairs, waits for them all, and returns them. */
    syncAll: async (a: { runs: Array<{ tenant: string; module: SyncModuleName }>; mode: SyncMode; timeoutMs: number }) => {
      const ids: string[] = [];
      for (const r of a.runs) ids.push((await s.sync.trigger(r.tenant, r.module, a.mode, 'api')).run.id);
      return waitAll(ids, a.timeoutMs);
    },
    /** Triggers one run and returns at once. */
    trigger: async (a: { tenant: string; module: SyncModuleName; mode: SyncMode }) => (await s.sync.trigger(a.tenant, a.module, a.mode, 'api')).run.id,
    run: async (id: string) => summary(id),
    /** Change events stored but not yet handled, and webhook deliveries not yet sent. */
    backlog: async () => {
      const res = await sql<{ events: number; deliveries: number }>`
        select (select count(*) from lark_events where status = 'pending')::int as events,
               (select count(*) from webhook_deliveries where status = 'pending')::int as deliveries`.execute(s.db);
      return res.rows[0] ?? { events: 0, deliveries: 0 };
    },
    /**
     * Where the time went, from larksync's own rows over a window (ms since the epoch): a change
     * event from receipt to handled, and a records.changed delivery from its outbox row (the
     * producing transaction's start) to its first attempt (a coalesced one: its carrier's).
     */
    stages: async (a: { from: number; to: number }) => {
      const q = (p: number) => sql.lit(p);
      const pct = (expr: ReturnType<typeof sql>) => sql`percentile_cont(${q(0.5)}) within group (order by ${expr})::float8 as p50,
                                                        percentile_cont(${q(0.99)}) within group (order by ${expr})::float8 as p99, count(*)::int as n`;
      const from = new Date(a.from);
      const to = new Date(a.to);
      const handled = await sql<{ p50: number; p99: number; n: number }>`
        select ${pct(sql`extract(epoch from processed_at - received_at) * 1000`)}
          from lark_events where received_at between ${from} and ${to} and status = 'processed' and event_type <> 'app_ticket'`.execute(s.db);
      const byStatus = await sql<{ status: string; n: number }>`
        select status, count(*)::int as n from lark_events where received_at between ${from} and ${to} group by status`.execute(s.db);
      const toAttempt = await sql<{ p50: number; p99: number; n: number }>`
        select ${pct(sql`extract(epoch from f.first - d.created_at) * 1000`)}
          from webhook_deliveries d
          cross join lateral (select min(attempted_at) as first from webhook_attempts where delivery_id = coalesce(d.coalesced_into, d.id)) f
         where d.event_type = 'records.changed' and d.created_at between ${from} and ${to} and f.first is not null`.execute(s.db);
      const deliveries = await sql<{ status: string; n: number }>`
        select status, count(*)::int as n from webhook_deliveries where created_at between ${from} and ${to} group by status`.execute(s.db);
      return {
        eventHandledMs: handled.rows[0],
        eventsByStatus: Object.fromEntries(byStatus.rows.map((r) => [r.status, r.n])),
        outboxToFirstAttemptMs: toAttempt.rows[0],
        deliveriesByStatus: Object.fromEntries(deliveries.rows.map((r) => [r.status, r.n])),
      };
    },
  },
  () => larksync.stop(),
);
