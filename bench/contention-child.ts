/**
 * larksync for the contention benchmark: the production bootstrap with its HTTP endpoint, the
 * worker and its crons (token refresh every minute), as `npm start` runs it. The parent installs
 * tenants and starts syncs over IPC; pushes come over HTTP from a load process. Env: larksync's
 * own variables, plus BENCH_RATE_LIMIT_SCALE.
 */
import { pino } from 'pino';
import { sql } from 'kysely';
import { startLarksync } from '../src/bootstrap.js';
import { loadConfig } from '../src/config/env.js';
import { serveParent } from './child-ipc.js';

const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1' });
const larksync = await startLarksync(config, {
  log: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
  rateLimitScale: Number(process.env.BENCH_RATE_LIMIT_SCALE ?? 1),
});
const s = larksync.services;

export interface TenantSetup {
  tenant: string;
  /** a Base table to sync; absent: a tenant that only holds a token */
  table?: { appToken: string; tableId: string };
}

export interface RunState {
  id: string;
  status: string;
  records: number;
  seconds: number;
}

serveParent(
  {
    url: async () => larksync.url,
    setup: async (a: { appId: string; ticket: string; tenants: TenantSetup[] }) => {
      await s.tickets.save(a.appId, a.ticket, new Date(), null);
      for (const t of a.tenants) {
        await s.tenants.install({ tenantKey: t.tenant, appId: a.appId }, null);
        // Disabled: runs start when the benchmark says, not on the scheduler's minute.
        if (t.table) await s.connectors.put(t.tenant, 'base', { enabled: false, config: { tables: [t.table] } }, 'store');
        await s.tokens.getTenantAccessToken(t.tenant);
      }
    },
    trigger: async (tenants: string[]) => {
      const ids: string[] = [];
      for (const t of tenants) ids.push((await s.sync.trigger(t, 'base', 'full', 'api')).run.id);
      return ids;
    },
    runs: async (ids: string[]): Promise<RunState[]> => {
      const out: RunState[] = [];
      for (const id of ids) {
        const r = await s.sync.get(id);
        if (!r) continue;
        out.push({
          id,
          status: r.status,
          records: r.counts.base_records ?? 0,
          seconds: ((r.finished_at?.getTime() ?? Date.now()) - (r.created_at.getTime())) / 1000,
        });
      }
      return out;
    },
    /** Makes the tenants' tokens due for refresh now; returns their mint counts so far. */
    markDue: async (tenants: string[]) => {
      const res = await sql<{ tenant_key: string; mint_count: number }>`
        update access_tokens set refresh_at = now()
         where kind = 'tenant' and tenant_key = any(${tenants}::text[])
        returning tenant_key, mint_count`.execute(s.db);
      return Object.fromEntries(res.rows.map((r) => [r.tenant_key, r.mint_count]));
    },
    mints: async (tenants: string[]) => {
      const res = await sql<{ tenant_key: string; mint_count: number }>`
        select tenant_key, mint_count from access_tokens where kind = 'tenant' and tenant_key = any(${tenants}::text[])`.execute(s.db);
      return Object.fromEntries(res.rows.map((r) => [r.tenant_key, r.mint_count]));
    },
  },
  () => larksync.stop(),
);
