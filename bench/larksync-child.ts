/**
 * larksync as its own process for benchmarks: the production bootstrap (migrations, services,
 * graphile-worker, sync engine) with the configuration in environment variables, plus
 * BENCH_RATE_LIMIT_SCALE (multiplies larksync's pacing limits; 1 = Lark's documented tiers) and
 * BENCH_SLICE_MS / BENCH_READ_AHEAD (engine options). The parent sets up one tenant and triggers runs over IPC; the runs themselves go
 * through the job queue and the engine exactly as in production. BENCH_LISTEN=1 also serves the
 * HTTP API (API_TOKEN) as `npm start` does, for the feed walk of bench/base-feed.ts. Started by
 * bench/base-sync.ts.
 */
import { pino } from 'pino';
import { startLarksync } from '../src/bootstrap.js';
import { loadConfig } from '../src/config/env.js';
import type { SyncMode, SyncRunRow } from '../src/sync/sync.tables.js';
import { serveParent } from './child-ipc.js';

const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1' });
const larksync = await startLarksync(config, {
  log: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
  listen: process.env.BENCH_LISTEN === '1',
  // Crons would add scheduled runs between the measured ones.
  workerOptions: { cron: false },
  rateLimitScale: Number(process.env.BENCH_RATE_LIMIT_SCALE ?? 1),
  engineOptions: {
    ...(process.env.BENCH_SLICE_MS ? { sliceMs: Number(process.env.BENCH_SLICE_MS) } : {}),
    ...(process.env.BENCH_READ_AHEAD ? { readAhead: Number(process.env.BENCH_READ_AHEAD) } : {}),
  },
});
const s = larksync.services;

/**
 * Resident set size sampled every 100 ms: the highest before the first run (startup) and the
 * memory at the highest sample (MiB): V8's heap, Buffers and other memory outside it, so a peak
 * can be placed without a heap snapshot.
 */
const memory: { startup: number; atPeak: Record<string, number> } = { startup: 0, atPeak: { rss: 0 } };
let running = false;
const sample = () => {
  const m = process.memoryUsage();
  const mib = (n: number) => Math.round(n / 2 ** 20);
  if (!running) memory.startup = Math.max(memory.startup, mib(m.rss));
  if (mib(m.rss) > (memory.atPeak.rss ?? 0)) {
    memory.atPeak = { rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers) };
  }
};
sample();
setInterval(sample, 100).unref();

export interface SetupArgs {
  appId: string;
  ticket: string;
  tenant: string;
  appToken: string;
  tableId: string;
}

export interface RunResult {
  id: string;
  status: string;
  error: string | null;
  /** created_at .. finished_at of the run row (the database's clock) */
  seconds: number;
  /** created_at and finished_at (ms since the epoch, the database's clock) */
  createdAt: number;
  finishedAt: number;
  pages: number;
  upstreamCalls: number;
  throttledWaits: number;
  counts: Record<string, number>;
}

async function finished(id: string): Promise<SyncRunRow> {
  for (;;) {
    const r = await s.sync.get(id);
    if (r && !['queued', 'running'].includes(r.status)) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

serveParent(
  {
    url: async () => larksync.url,
    /** A tenant with no connector: the feed walk's rows are seeded into it directly. */
    install: async (a: { appId: string; tenant: string }) => {
      await s.tenants.install({ tenantKey: a.tenant, appId: a.appId }, null);
    },
    /** Cancels the tenant's runs (the feed walk's concurrent sync, once the walks are over). */
    cancel: async (a: { tenant: string }) => s.sync.cancelTenantRuns(a.tenant, 'the benchmark is over'),
    setup: async (a: SetupArgs) => {
      await s.tickets.save(a.appId, a.ticket, new Date(), null);
      await s.tenants.install({ tenantKey: a.tenant, appId: a.appId }, null);
      await s.connectors.put(a.tenant, 'base', { enabled: true, config: { tables: [{ appToken: a.appToken, tableId: a.tableId }] } }, 'store');
    },
    memory: async () => memory,
    sync: async (a: { tenant: string; mode: SyncMode }): Promise<RunResult> => {
      running = true;
      const { run } = await s.sync.trigger(a.tenant, 'base', a.mode, 'api');
      const r = await finished(run.id);
      return {
        id: r.id,
        status: r.status,
        error: r.error_message,
        seconds: ((r.finished_at?.getTime() ?? Date.now()) - r.created_at.getTime()) / 1000,
        createdAt: r.created_at.getTime(),
        finishedAt: r.finished_at?.getTime() ?? Date.now(),
        pages: r.pages,
        upstreamCalls: r.upstream_calls,
        throttledWaits: r.throttled_waits,
        counts: r.counts,
      };
    },
  },
  () => larksync.stop(),
);
