/**
 * larksync as its own process for the docs benchmark: the production bootstrap (migrations,
 * services, graphile-worker, sync engine, sink delivery) configured from the environment, with
 * one tenant whose docs connector reads a wiki space and feeds a RAGFlow sink. The parent triggers
 * runs over IPC; the run and the delivery after it go through the job queue as in production.
 * Started by bench/docs-sync.ts.
 */
import { sql } from 'kysely';
import { pino } from 'pino';
import { startLarksync } from '../src/bootstrap.js';
import { loadConfig } from '../src/config/env.js';
import type { SyncRunRow } from '../src/sync/sync.tables.js';
import { serveParent } from './child-ipc.js';

const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1' });
const larksync = await startLarksync(config, {
  log: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
  listen: false,
  // The minute crons would add runs between the measured ones; a docs run queues its sinks' delivery itself.
  workerOptions: { cron: false },
  rateLimitScale: Number(process.env.BENCH_RATE_LIMIT_SCALE ?? 1),
  // Parses are polled every 500 ms rather than 2 s: the fake parses in 200 ms.
  sinkOptions: { pollMs: 500 },
});
const s = larksync.services;
// Production's minute cron that queues the sinks' deliveries (queue_sink_deliveries), which lets
// delivery start while a long run is still fetching; the other crons stay off (they add runs).
setInterval(() => void s.sinks.queueDue().catch(() => undefined), 60_000).unref();

/**
 * Resident set size sampled every 100 ms, its maximum kept per stage: where the peak (VmHWM, read
 * by the parent) comes from, the Lark side or the delivery.
 */
const rssPeaks: Record<string, number> = {};
/** At the highest sample: what the memory was (MiB): V8's heap, Buffers and other memory outside it. */
let atPeak: Record<string, number> = {};
let stage = 'startup';
const sample = () => {
  const m = process.memoryUsage();
  const mib = Math.round(m.rss / 2 ** 20);
  if (mib > Math.max(0, ...Object.values(rssPeaks))) {
    atPeak = { rss: mib, heapTotal: Math.round(m.heapTotal / 2 ** 20), heapUsed: Math.round(m.heapUsed / 2 ** 20), external: Math.round(m.external / 2 ** 20), arrayBuffers: Math.round(m.arrayBuffers / 2 ** 20) };
    atPeak[`in_${stage}`] = 1;
  }
  rssPeaks[stage] = Math.max(rssPeaks[stage] ?? 0, mib);
};
setInterval(sample, 100).unref();

export interface DocsSetupArgs {
  appId: string;
  ticket: string;
  tenant: string;
  spaceId: string;
  ragflowUrl: string;
  ragflowKey: string;
  datasetId: string;
}

export interface DocsRunResult {
  status: string;
  error: string | null;
  /** the run: created_at .. finished_at (the database's clock) */
  runSeconds: number;
  /** trigger .. the sink settled (every document delivered and parsed, nothing left on the feed) */
  deliveredSeconds: number;
  upstreamCalls: number;
  counts: Record<string, number>;
  /** live rows of docs_content, and sink documents by state */
  documents: number;
  sinkDone: number;
  sinkFailed: number;
  /** MiB, the largest sample by stage so far (startup, sync, delivery) */
  rssPeaks: Record<string, number>;
}

async function finished(id: string): Promise<SyncRunRow> {
  for (;;) {
    const r = await s.sync.get(id);
    if (r && !['queued', 'running'].includes(r.status)) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Every document delivered: no state row with work left, and the sink's cursor at the feed's end. */
async function settled(tenant: string): Promise<boolean> {
  const res = await sql<{ open: number; behind: boolean }>`
    select (select count(*)::int from sink_documents
             where tenant_key = ${tenant} and sink_name = 'kb'
               and (want_version > done_version or step <> 'idle' or cardinality(obsolete_ids) > 0)) as open,
           exists (select 1 from docs_content d, sinks k
                    where k.tenant_key = ${tenant} and k.name = 'kb' and d.tenant_key = k.tenant_key
                      and (d.change_xid, d.change_seq) > (k.cursor_xid, k.cursor_seq)) as behind`.execute(s.db);
  return res.rows[0]!.open === 0 && !res.rows[0]!.behind;
}

serveParent(
  {
    setup: async (a: DocsSetupArgs) => {
      await s.tickets.save(a.appId, a.ticket, new Date(), null);
      await s.tenants.install({ tenantKey: a.tenant, appId: a.appId }, null);
      await s.connectors.put(a.tenant, 'docs', { enabled: true, config: { sources: [{ wikiSpaceId: a.spaceId }], sinks: ['kb'] } }, 'store');
      await s.sinks.put(a.tenant, 'kb', { type: 'ragflow', url: a.ragflowUrl, apiKey: a.ragflowKey, datasetId: a.datasetId });
    },
    sync: async (a: { tenant: string }): Promise<DocsRunResult> => {
      const t0 = Date.now();
      sample();
      stage = 'sync';
      const { run } = await s.sync.trigger(a.tenant, 'docs', 'incremental', 'api');
      const r = await finished(run.id);
      sample();
      stage = 'delivery';
      while (!(await settled(a.tenant))) await new Promise((res) => setTimeout(res, 200));
      const deliveredSeconds = (Date.now() - t0) / 1000;
      sample();
      stage = 'idle';
      const docs = await sql<{ n: number }>`select count(*)::int as n from docs_content where tenant_key = ${a.tenant} and deleted_at is null`.execute(s.db);
      const states = await sql<{ status: string; n: number }>`
        select status, count(*)::int as n from sink_documents where tenant_key = ${a.tenant} and sink_name = 'kb' group by status`.execute(s.db);
      const by = Object.fromEntries(states.rows.map((x) => [x.status, x.n]));
      return {
        status: r.status,
        error: r.error_message,
        runSeconds: ((r.finished_at?.getTime() ?? Date.now()) - r.created_at.getTime()) / 1000,
        deliveredSeconds,
        upstreamCalls: r.upstream_calls,
        counts: r.counts,
        documents: docs.rows[0]?.n ?? 0,
        sinkDone: by.done ?? 0,
        sinkFailed: by.failed ?? 0,
        rssPeaks: { ...rssPeaks, ...Object.fromEntries(Object.entries(atPeak).map(([k, v]) => [`peak_${k}`, v])) },
      };
    },
  },
  () => larksync.stop(),
);
