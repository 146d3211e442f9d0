/**
 * Writing into Base (`npm run bench -- writes`): records sent through larksync's REST write API
 * (POST /api/v1/tenants/:t/writes, up to 10,000 records a request) into one Base table, against
 * a simulator that keeps Lark's rules: one write call at a time per Base (a second one is an
 * "overlap", answered 1254291), 50 write calls/s, 20 batch_get and 20 search calls/s, at most
 * 1,000 records a call, and BENCH_WRITES_LATENCY_MS (default 150) per write call.
 *
 *  (a) BENCH_WRITES_RECORDS creates (default 100,000), BENCH_WRITES_PER_REQUEST a request
 *      (default 10,000), the requests sent one after another;
 *  (b) as many upserts by the key field (op "upsert", match { Order: key }) on the same table:
 *      every other one matches a record created in (a) (an update), the rest are new keys (a
 *      create);
 *  (c) the ceiling for one write call in flight: 1,000 records per call / the call's latency
 *      (6,667 records/s at 150 ms), and larksync's share of it;
 *  (d) the baseline, in the same run: one create call per record (POST .../records straight to
 *      the simulator with a tenant token, sequentially, as a workflow's HTTP node does), over
 *      BENCH_WRITES_BASELINE records (default 300), as records/s.
 *
 * Times run from the first POST to the moment the last write finished (its finished_at): a write
 * is "succeeded" once Lark holds every record; the written rows are read back into base_records
 * right after (batch_get, 20 calls/s), and the time until base_records held every row is
 * reported too. Every phase is checked: exactly
 * the expected records in the simulator's table, no key twice, the rows in base_records, and no
 * overlap.
 *
 * larksync (bench/writes-larksync-child.ts: production bootstrap, HTTP, worker) and the simulator
 * (bench/writes-sim-child.ts) run as their own processes, compiled to JavaScript first.
 *
 * Knobs: BENCH_WRITES_RECORDS, BENCH_WRITES_UPSERTS (default = RECORDS; 0 skips (b)),
 * BENCH_WRITES_PER_REQUEST, BENCH_WRITES_BASELINE, BENCH_WRITES_LATENCY_MS,
 * BENCH_WRITES_ENFORCE_LIMITS (default 1), BENCH_LARKSYNC_NODE_ARGS (e.g. "--cpu-prof
 * --cpu-prof-dir=/tmp/prof"), BENCH_LOG_LEVEL, BENCH_KEEP_DB, BENCH_DATABASE_URL.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import type { BenchEnv } from './run.js';
import { dropDatabase, freshDatabase } from './bench-db.js';
import { compileChildren, forkChild, type BenchChild } from './child-ipc.js';
import { cpuSeconds, peakRssMiB, postgresCpuSeconds, reproduce, type BenchResult, type Figure } from './report.js';
import type { KeyCheck, WritesSimInfo, WritesSimStats } from './writes-sim-child.js';

const APP = { appId: 'cli_bench_writes', appSecret: 'bench-secret', verificationToken: 'vtok-bench' };
const TENANT = 'tenant-bench-writes';
const API_TOKEN = 'bench-api-token-writes-0001';
const KEY = 'Order';
const KNOBS = [
  'BENCH_WRITES_RECORDS',
  'BENCH_WRITES_UPSERTS',
  'BENCH_WRITES_PER_REQUEST',
  'BENCH_WRITES_BASELINE',
  'BENCH_WRITES_LATENCY_MS',
  'BENCH_WRITES_ENFORCE_LIMITS',
  'BENCH_LARKSYNC_NODE_ARGS',
  'BENCH_KEEP_DB',
  'BENCH_DATABASE_URL',
];
/** Lark's largest create / update call (bitable-writes.md §6.1). */
const MAX_PER_CALL = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number | null, digits = 0) => (n === null || !Number.isFinite(n) ? null : Number(n.toFixed(digits)));
const fmt = (n: number) => n.toLocaleString('en-US');
const gap = (ms: number) => ms.toFixed(1);

interface WriteSummary {
  id: string;
  status: string;
  counts: { total: number; ok: number; failed: number; pending: number; cancelled: number };
  upstreamCalls: number;
  createdAt: string;
  finishedAt: string | null;
  error: { class: string; message: string } | null;
}

type Rec = { fields: Record<string, unknown> } | { match: Record<string, string>; fields: Record<string, unknown> };

const STAGES = ['New', 'Paid', 'Shipped'];
const createFields = (key: string, i: number) => ({
  [KEY]: key,
  Qty: (i % 9) + 1,
  Price: (i % 1000) / 10,
  Stage: STAGES[i % 3],
  Paid: i % 2 === 0,
  Ordered: '2026-12-01',
});

interface PhaseResult {
  /** the first POST (epoch ms) */
  startedAt: number;
  records: number;
  requests: number;
  /** first POST to the last write's finished_at */
  seconds: number;
  /** first POST until the simulator's table held the phase's records */
  larkSeconds: number | null;
  /** until base_records held every row (the read-back included) */
  inRecordsSeconds: number | null;
  /** time spent sending the requests (all accepted) */
  postSeconds: number;
  statuses: Record<string, number>;
  upstreamCallsByLarksync: number;
  sim: WritesSimStats;
  keys: KeyCheck;
  baseRecords: number;
  cpuSec: number | null;
  pgCpuSec: number;
}

class Client {
  constructor(private readonly url: string) {}

  async post(records: Rec[], op: 'create' | 'upsert', table: { appToken: string; tableId: string }): Promise<WriteSummary> {
    const res = await fetch(`${this.url}/api/v1/tenants/${TENANT}/writes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json', 'idempotency-key': `bench-${op}-${randomBytes(8).toString('hex')}` },
      body: JSON.stringify({ table, op, records }),
    });
    const body = (await res.json()) as WriteSummary;
    if (res.status !== 202 && res.status !== 200) throw new Error(`POST writes answered ${res.status}: ${JSON.stringify(body).slice(0, 500)}`);
    return body;
  }

  async list(limit: number): Promise<WriteSummary[]> {
    const res = await fetch(`${this.url}/api/v1/tenants/${TENANT}/writes?limit=${limit}`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
    if (res.status !== 200) throw new Error(`GET writes answered ${res.status}`);
    return ((await res.json()) as { writes: WriteSummary[] }).writes;
  }
}

async function countBaseRecords(url: string, info: WritesSimInfo): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const res = await c.query<{ n: number }>(
      `select count(*)::int as n from base_records where tenant_key = $1 and partition = $2 and deleted_at is null`,
      [TENANT, `${info.appToken}:${info.tableId}`],
    );
    return res.rows[0]?.n ?? 0;
  } finally {
    await c.end();
  }
}

/** Sends one phase's records in requests of `perRequest`, one after another, and waits for every write to finish. */
async function phase(
  label: string,
  op: 'create' | 'upsert',
  records: (i: number) => Rec,
  count: number,
  perRequest: number,
  expectedRows: number,
  ctx: { client: Client; sim: BenchChild; info: WritesSimInfo; larksync: BenchChild; dbUrl: string; keyCheck: { prefix: string; qty: number } },
): Promise<PhaseResult> {
  const { client, sim, info } = ctx;
  await sim.call('resetStats');
  const table = { appToken: info.appToken, tableId: info.tableId };
  const bodies: Rec[][] = [];
  for (let start = 0; start < count; start += perRequest) {
    bodies.push(Array.from({ length: Math.min(perRequest, count - start) }, (_, j) => records(start + j)));
  }
  const cpu0 = cpuSeconds(ctx.larksync.pid);
  const pg0 = postgresCpuSeconds();
  const t0 = Date.now();
  // Watches the simulator's table for the moment Lark holds every record.
  let larkAt: number | null = null;
  let watching = true;
  const watch = (async () => {
    let lastPrint = Date.now();
    while (watching) {
      const rows = await sim.call<number>('rows');
      if (larkAt === null && rows >= expectedRows) larkAt = Date.now();
      if (Date.now() - lastPrint >= 5_000) {
        lastPrint = Date.now();
        process.stderr.write(`  ${label}: ${fmt(rows)} rows in the table after ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
      }
      await sleep(50);
    }
  })();
  const ids: string[] = [];
  for (const body of bodies) ids.push((await client.post(body, op, table)).id);
  const postSeconds = (Date.now() - t0) / 1000;
  let writes: WriteSummary[] = [];
  for (;;) {
    writes = (await client.list(Math.min(100, ids.length + 5))).filter((w) => ids.includes(w.id));
    if (writes.length === ids.length && writes.every((w) => !['queued', 'running'].includes(w.status))) break;
    await sleep(250);
  }
  watching = false;
  await watch;
  // The rows follow into base_records (the read-back of the answered calls).
  let inRecordsAt: number | null = null;
  for (const until = Date.now() + 600_000; Date.now() < until; ) {
    if ((await countBaseRecords(ctx.dbUrl, info)) >= expectedRows) {
      inRecordsAt = Date.now();
      break;
    }
    await sleep(100);
  }
  const cpu1 = cpuSeconds(ctx.larksync.pid);
  const pg1 = postgresCpuSeconds();
  const lastFinish = Math.max(...writes.map((w) => Date.parse(w.finishedAt ?? new Date().toISOString())));
  const statuses: Record<string, number> = {};
  for (const w of writes) statuses[w.status] = (statuses[w.status] ?? 0) + 1;
  const failed = writes.filter((w) => w.status !== 'succeeded');
  if (failed.length > 0) throw new Error(`${label}: ${failed.length} write(s) did not succeed: ${JSON.stringify(failed[0]).slice(0, 600)}`);
  const simStats = await sim.call<WritesSimStats>('stats');
  const keys = await sim.call<KeyCheck>('checkKeys', { field: KEY, ...ctx.keyCheck });
  const baseRecords = await countBaseRecords(ctx.dbUrl, info);
  // A benchmark that loses or doubles records measures nothing.
  if (keys.rows !== expectedRows || keys.distinct !== expectedRows || keys.doubled.length > 0 || keys.missing > 0) {
    throw new Error(`${label}: the table holds ${keys.rows} records with ${keys.distinct} distinct keys (expected ${expectedRows}); doubled: ${keys.doubled.join(', ')}`);
  }
  if (simStats.write.overlaps !== 0) throw new Error(`${label}: ${simStats.write.overlaps} write calls overlapped on the Base`);
  if (baseRecords !== expectedRows) throw new Error(`${label}: base_records holds ${baseRecords} live rows for a table of ${expectedRows}`);
  return {
    startedAt: t0,
    records: count,
    requests: bodies.length,
    seconds: (lastFinish - t0) / 1000,
    larkSeconds: larkAt === null ? null : (larkAt - t0) / 1000,
    inRecordsSeconds: inRecordsAt === null ? null : (inRecordsAt - t0) / 1000,
    postSeconds,
    statuses,
    upstreamCallsByLarksync: writes.reduce((n, w) => n + w.upstreamCalls, 0),
    sim: simStats,
    keys,
    baseRecords,
    cpuSec: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
    pgCpuSec: pg1 - pg0,
  };
}

/** One create call per record, sequentially, with a tenant token: what a workflow's HTTP node does. */
async function baseline(info: WritesSimInfo, ticket: string, count: number): Promise<{ records: number; seconds: number; failures: number }> {
  const post = async <T>(path: string, body: unknown, token?: string): Promise<T> => {
    const res = await fetch(`${info.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return (await res.json()) as T;
  };
  const app = await post<{ app_access_token?: string }>('/open-apis/auth/v3/app_access_token', { app_id: APP.appId, app_secret: APP.appSecret, app_ticket: ticket });
  const tenant = await post<{ tenant_access_token?: string }>('/open-apis/auth/v3/tenant_access_token', { app_access_token: app.app_access_token, tenant_key: TENANT });
  const token = tenant.tenant_access_token;
  if (!token) throw new Error('baseline: no tenant_access_token from the simulator');
  const path = `/open-apis/bitable/v1/apps/${info.appToken}/tables/${info.tableId}/records`;
  let failures = 0;
  const started = performance.now();
  let firstFailure: string | undefined;
  for (let i = 0; i < count; i += 1) {
    // Lark's own value shapes: a date is epoch milliseconds (larksync converts "2026-12-01" itself).
    const r = await post<{ code: number; msg?: string }>(path, { fields: { ...createFields(`B-${i}`, i), Ordered: Date.UTC(2026, 10, 30, 16) } }, token);
    if (r.code !== 0) {
      failures += 1;
      firstFailure ??= `${r.code} ${r.msg ?? ''}`;
    }
  }
  if (failures > 0) throw new Error(`baseline: ${failures} of ${count} creates failed, the first with ${firstFailure}`);
  return { records: count, seconds: (performance.now() - started) / 1000, failures };
}

export async function benchWrites(env: BenchEnv): Promise<BenchResult> {
  const records = Number(process.env.BENCH_WRITES_RECORDS ?? 100_000);
  const upserts = Number(process.env.BENCH_WRITES_UPSERTS ?? records);
  const perRequest = Math.min(10_000, Number(process.env.BENCH_WRITES_PER_REQUEST ?? 10_000));
  const baselineCount = Number(process.env.BENCH_WRITES_BASELINE ?? 300);
  const latencyMs = Number(process.env.BENCH_WRITES_LATENCY_MS ?? 150);
  const enforceLimits = process.env.BENCH_WRITES_ENFORCE_LIMITS !== '0';
  const ceiling = MAX_PER_CALL / (latencyMs / 1000);
  const loadBefore = os.loadavg();
  const wallStart = performance.now();
  console.error('writes: compiling the benchmark processes (as npm run build does for production)');
  await compileChildren(['bench/writes-larksync-child.ts', 'bench/writes-sim-child.ts']);

  const sim = await forkChild('bench/writes-sim-child.ts', {
    BENCH_SIM_APP_ID: APP.appId,
    BENCH_SIM_APP_SECRET: APP.appSecret,
    BENCH_SIM_VTOK: APP.verificationToken,
    BENCH_SIM_TENANT: TENANT,
    BENCH_SIM_ENFORCE_LIMITS: enforceLimits ? '1' : '0',
    BENCH_SIM_WRITE_LATENCY_MS: String(latencyMs),
  });
  const dbUrl = await freshDatabase(env.admin);
  let larksync: BenchChild | undefined;
  try {
    const info = await sim.call<WritesSimInfo>('info');
    larksync = await forkChild(
      'bench/writes-larksync-child.ts',
      {
        DATABASE_URL: dbUrl,
        ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        API_TOKEN,
        LARK_APP_ID: APP.appId,
        LARK_APP_SECRET: APP.appSecret,
        LARK_VERIFICATION_TOKEN: APP.verificationToken,
        LARK_DOMAIN: info.url,
        // The simulator runs on 127.0.0.1 over http, which production (DATABASE_URL set) refuses by default.
        ALLOW_PRIVATE_LARK_DOMAINS: '1',
        BENCH_RATE_LIMIT_SCALE: '1',
        ...(process.env.BENCH_LOG_LEVEL ? { BENCH_LOG_LEVEL: process.env.BENCH_LOG_LEVEL } : {}),
      },
      (process.env.BENCH_LARKSYNC_NODE_ARGS ?? '').split(' ').filter(Boolean),
    );
    await larksync.call('setup', { appId: APP.appId, ticket: await sim.call<string>('ticket'), tenant: TENANT });
    const client = new Client(await larksync.call<string>('url'));
    const ctx = { client, sim, info, larksync, dbUrl };

    console.error(`writes: (a) ${fmt(records)} creates in requests of ${fmt(perRequest)}, ${latencyMs} ms a write call, limits ${enforceLimits ? 'enforced' : 'lifted'}`);
    const creates = await phase('creates', 'create', (i) => ({ fields: createFields(`W-${i}`, i) }), records, perRequest, records, {
      ...ctx,
      keyCheck: { prefix: 'W-', qty: 42 },
    });
    let ups: PhaseResult | undefined;
    if (upserts > 0) {
      const matched = Math.ceil(upserts / 2);
      console.error(`writes: (b) ${fmt(upserts)} upserts by ${KEY}: ${fmt(matched)} match a record of (a), ${fmt(upserts - matched)} are new`);
      // Even: the key of a record created in (a) (spread over it); odd: a new key.
      const upsertAt = (i: number): Rec =>
        i % 2 === 0
          ? { match: { [KEY]: `W-${(i / 2) * Math.max(1, Math.floor(records / matched)) % records}` }, fields: { Qty: 42, Stage: 'Shipped' } }
          : { match: { [KEY]: `U-${i}` }, fields: { Qty: 42, Stage: 'New', Price: 1.5 } };
      ups = await phase('upserts', 'upsert', upsertAt, upserts, perRequest, records + (upserts - matched), { ...ctx, keyCheck: { prefix: 'W-', qty: 42 } });
      if (ups.keys.prefixedWithQty !== matched) throw new Error(`upserts: ${ups.keys.prefixedWithQty} records of (a) were updated, expected ${matched}`);
    }
    console.error(`writes: (d) baseline, ${fmt(baselineCount)} single creates in a row`);
    const base = await baseline(info, await sim.call<string>('ticket'), baselineCount);
    const rssMiB = peakRssMiB(larksync.pid);
    const loadAfter = os.loadavg();

    const baseRate = base.records / base.seconds;
    const createRate = records / creates.seconds;
    const upsertRate = ups ? upserts / ups.seconds : null;
    const figures: Figure[] = [
      {
        figure: `(a) creates through the write API, ${fmt(records)} records, until every write succeeded`,
        unit: 'records/s',
        larksync: round(createRate),
        baseline: round(baseRate, 2),
        goal: '>= 50x baseline',
        met: createRate >= 50 * baseRate,
      },
      {
        figure: `(a) creates as a share of the ${fmt(Math.round(ceiling))} records/s ceiling (baseline = ceiling)`,
        unit: 'records/s',
        larksync: round(createRate),
        baseline: round(ceiling),
        goal: '>= 0.9x ceiling',
        met: createRate >= 0.9 * ceiling,
      },
      {
        figure: '(a) creates until base_records held every row (the read-back, batch_get at 20 calls/s, included)',
        unit: 'records/s',
        larksync: round(creates.inRecordsSeconds ? records / creates.inRecordsSeconds : null),
        baseline: round(baseRate, 2),
      },
      ...(ups && upsertRate !== null
        ? [
            {
              figure: `(b) upserts by ${KEY} (half update, half create), ${fmt(upserts)} records, until every write succeeded`,
              unit: 'records/s',
              larksync: round(upsertRate),
              baseline: round(baseRate, 2),
              goal: '>= 50x baseline',
              met: upsertRate >= 50 * baseRate,
            },
            {
              figure: '(b) upserts as a share of the ceiling (baseline = ceiling)',
              unit: 'records/s',
              larksync: round(upsertRate),
              baseline: round(ceiling),
              goal: '>= 0.9x ceiling',
              met: upsertRate >= 0.9 * ceiling,
            },
            {
              figure: '(b) upserts until base_records held every row (read-back included)',
              unit: 'records/s',
              larksync: round(ups.inRecordsSeconds ? upserts / ups.inRecordsSeconds : null),
              baseline: round(baseRate, 2),
            },
          ]
        : []),
      {
        figure: '(a) upstream write calls per 1,000 records (baseline: one call per record)',
        unit: 'calls',
        larksync: round((creates.sim.write.calls / records) * 1000, 2),
        baseline: 1000,
      },
      {
        figure: 'write calls in flight at once on the Base (overlaps), both phases',
        unit: 'calls',
        larksync: creates.sim.write.overlaps + (ups?.sim.write.overlaps ?? 0),
        baseline: 0,
        goal: '0',
        met: creates.sim.write.overlaps + (ups?.sim.write.overlaps ?? 0) === 0,
      },
      { figure: 'peak RSS of larksync', unit: 'MiB', larksync: round(rssMiB), baseline: null },
    ];

    const describe = (label: string, p: PhaseResult) =>
      `${label}: ${p.seconds.toFixed(1)} s from the first POST to the last write's finish (${p.requests} requests, sent in ${p.postSeconds.toFixed(1)} s; Lark held every record after ${p.larkSeconds?.toFixed(1) ?? '?'} s); ` +
      `${fmt(p.sim.write.calls)} write calls (batch sizes min ${p.sim.write.batchSizes.min}, median ${p.sim.write.batchSizes.median}, max ${p.sim.write.batchSizes.max}; ${fmt(p.sim.write.recordsCreated)} created, ${fmt(p.sim.write.recordsUpdated)} updated), ` +
      `${p.sim.write.overlaps} overlaps, ${p.sim.write.conflicts} conflicts, ${p.sim.write.replays} replays; ` +
      `the Base idle before the first call ${((p.sim.write.firstCallAt - p.startedAt) / 1000).toFixed(2)} s and between calls ${(p.sim.write.idleGapsMs.total / 1000).toFixed(2)} s (gap median ${gap(p.sim.write.idleGapsMs.median)}, p90 ${gap(p.sim.write.idleGapsMs.p90)}, max ${gap(p.sim.write.idleGapsMs.max)} ms); ` +
      `${fmt(p.sim.batchGets)} batch_get and ${fmt(p.sim.searches)} search calls; ` +
      `${p.sim.throttled} requests refused for a frequency limit; larksync CPU ${p.cpuSec?.toFixed(1) ?? '?'} s, PostgreSQL CPU ${p.pgCpuSec.toFixed(1)} s; ` +
      `checked: ${fmt(p.keys.rows)} records, ${fmt(p.keys.distinct)} distinct keys, ${fmt(p.baseRecords)} rows in base_records`;
    const notes = [
      `simulator: ${latencyMs} ms a write call (bitableWrites.latencyMs), Lark's frequency limits ${enforceLimits ? 'enforced (50 write calls/s, 20 batch_get/s, 20 search/s per API, app and tenant)' : 'lifted'}; larksync paces at Lark's documented tiers (rate-limit scale 1)`,
      `ceiling: one write call in flight per Base (Lark's rule) x ${MAX_PER_CALL} records a call / ${latencyMs} ms = ${fmt(Math.round(ceiling))} records/s`,
      describe('(a) creates', creates),
      ...(ups ? [describe(`(b) upserts (every other one matches a record of (a): ${fmt(Math.ceil(upserts / 2))} updates, ${fmt(Math.floor(upserts / 2))} creates)`, ups)] : []),
      `(d) baseline: ${fmt(base.records)} single creates (POST .../records, tenant token, one at a time) in ${base.seconds.toFixed(1)} s = ${baseRate.toFixed(2)} records/s${base.failures > 0 ? ` (${base.failures} failed)` : ''}`,
      `a write succeeds once Lark holds its records; their rows are read back into base_records after (batch_get: 100 ids a call, 20 calls/s, so at most 2,000 records/s), reported as "until base_records held every row"`,
      `load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')} (the machine may be shared); wall time ${((performance.now() - wallStart) / 1000).toFixed(0)} s`,
    ];
    return {
      name: 'writes',
      title: `Writing into Base: ${fmt(records)} creates and ${fmt(upserts)} upserts through the write API`,
      command: reproduce('writes', KNOBS),
      baseline: `one create call per record (POST /open-apis/bitable/v1/apps/:app/tables/:t/records, tenant token, sequential), ${fmt(base.records)} records; ceiling: ${MAX_PER_CALL} records a call / ${latencyMs} ms`,
      figures,
      notes,
      details: { records, upserts, perRequest, latencyMs, enforceLimits, ceiling, creates, upserts_: ups ?? null, baseline: base, rssMiB, loadBefore, loadAfter },
    };
  } finally {
    await larksync?.stop();
    if (process.env.BENCH_LOG_LEVEL && larksync) process.stderr.write(larksync.output.join(''));
    await sim.stop();
    await dropDatabase(env.admin, dbUrl);
  }
}
