/**
 * Base sync throughput (`npm run bench -- base`): a Base table of BENCH_BASE_RECORDS records
 * (default 1 000 000) synced from the simulator into Postgres by larksync: a full run through the
 * job queue and the engine (paged search, content hash, upsert, seen keys, checkpoint per page,
 * completeness check, deletion sweep where there can be deletions).
 *
 *  (a) unthrottled: Lark's limits lifted in the simulator and in larksync's pacer, against the
 *      baseline: the SDK's `searchWithIterator` loop with one INSERT ... ON CONFLICT per record in
 *      autocommit, over the first BENCH_BASE_BASELINE_RECORDS records (default 100 000) of the
 *      same table; then (BENCH_BASE_REREAD=1, the default) the same table read again unchanged:
 *      a full pass whose content hashes skip every write and whose sweep marks nothing;
 *  (b) paced at Lark's documented search tier (20 req/s x 500 records = 10 000 records/s), as a
 *      fraction of that ceiling;
 *  (c) the cost of the feed guarantee (bench/base-feed.ts): a consumer walking
 *      BENCH_BASE_FEED_ROWS rows (default 1 000 000) through the records API against a plain
 *      keyset loop over the same rows, both while a paced Base sync of another tenant writes.
 *
 * larksync, the simulator and the baseline each run as their own OS process, compiled to
 * JavaScript first as for production (bench/*-child.ts), so larksync's peak RSS (VmHWM) and CPU
 * time are its own and it shares no event loop. Every larksync run is checked to leave exactly
 * the table's records in base_records.
 *
 * Knobs: BENCH_BASE_MODES (unthrottled,paced,feed), BENCH_BASE_FEED_ROWS, BENCH_READ_AHEAD and BENCH_SLICE_MS (engine
 * options), BENCH_LARKSYNC_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"),
 * BENCH_LOG_LEVEL (larksync's log, printed after each run), BENCH_KEEP_DB=1 (keep the databases).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import type { BenchEnv } from './run.js';
import { checkpoint, dropDatabase, freshDatabase } from './bench-db.js';
import { compileChildren, forkChild, type BenchChild } from './child-ipc.js';
import { cpuSeconds, peakRssMiB, postgresCpuSeconds, reproduce, type BenchResult, type Figure } from './report.js';
import type { SimInfo, SimStats } from './simulator-child.js';
import type { RunResult } from './larksync-child.js';
import type { BaselineArgs, BaselineResult } from './base-baseline-child.js';
import { FEED_PAGE, feedWalks, type FeedResult } from './base-feed.js';

const APP = { appId: 'cli_bench_sync', appSecret: 'bench-secret', verificationToken: 'vtok-bench' };
const TENANT = 'tenant-bench-base';
/** the tenant whose rows the feed walks read (the sync writes TENANT's meanwhile) */
const FEED_TENANT = 'tenant-bench-feed';
const API_TOKEN = 'bench-api-token-base-feed';
const PAGE = 500;
/** Lark's documented tier for records/search: 20 requests per second, 500 records each. */
const CEILING = 20 * PAGE;
const KNOBS = ['BENCH_BASE_RECORDS', 'BENCH_BASE_BASELINE_RECORDS', 'BENCH_BASE_REREAD', 'BENCH_BASE_MODES', 'BENCH_BASE_FEED_ROWS', 'BENCH_SLICE_MS', 'BENCH_READ_AHEAD', 'BENCH_LARKSYNC_NODE_ARGS', 'HEAP_GROWING_PERCENT', 'BENCH_KEEP_DB', 'BENCH_DATABASE_URL'];

async function startSimulator(records: number, enforceLimits: boolean): Promise<{ child: BenchChild; info: SimInfo }> {
  const child = await forkChild('bench/simulator-child.ts', {
    BENCH_SIM_APP_ID: APP.appId,
    BENCH_SIM_APP_SECRET: APP.appSecret,
    BENCH_SIM_VTOK: APP.verificationToken,
    BENCH_SIM_TENANT: TENANT,
    BENCH_SIM_RECORDS: String(records),
    BENCH_SIM_ENFORCE_LIMITS: enforceLimits ? '1' : '0',
  });
  return { child, info: await child.call<SimInfo>('info') };
}


async function countRows(url: string, sqlText: string, params: unknown[] = []): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const res = await c.query<{ n: number }>(sqlText, params);
    return res.rows[0]?.n ?? 0;
  } finally {
    await c.end();
  }
}

/** Prints the run's progress while it runs (rows committed so far, from the run row). */
function watchProgress(url: string, label: string, total: number): () => Promise<void> {
  const client = new pg.Client({ connectionString: url });
  let stopped = false;
  const started = performance.now();
  const loop = (async () => {
    await client.connect();
    let last = 0;
    while (!stopped) {
      await new Promise((r) => setTimeout(r, 1_000));
      if (performance.now() - last < 10_000) continue;
      last = performance.now();
      const res = await client
        .query<{ n: number | null }>(`select (counts->>'base_records')::int as n from sync_runs where status = 'running' order by id desc limit 1`)
        .catch(() => undefined);
      const n = res?.rows[0]?.n;
      if (typeof n === 'number') {
        const sec = (performance.now() - started) / 1000;
        process.stderr.write(`  ${label}: ${n.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} records after ${sec.toFixed(0)} s\n`);
      }
    }
    await client.end();
  })();
  return async () => {
    stopped = true;
    await loop.catch(() => undefined);
  };
}

interface ModeResult {
  first: RunResult;
  reread: RunResult | undefined;
  sim: SimStats;
  /** where the first run's time went, by the simulator's arrival times of its calls (callTimeline) */
  timeline: string;
  /** larksync's own samples: resident before the first run, and the memory at the highest sample */
  memory: { startup: number; atPeak: Record<string, number> };
  rssMiB: number | null;
  cpuSec: number | null;
  simCpuSec: number | null;
  /** every postgres process on the machine, over the first run */
  pgCpuSec: number;
}

function larksyncEnv(url: string, sim: SimInfo, rateLimitScale: number): Record<string, string> {
  return {
    DATABASE_URL: url,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LARK_APP_ID: APP.appId,
    LARK_APP_SECRET: APP.appSecret,
    LARK_VERIFICATION_TOKEN: APP.verificationToken,
    LARK_DOMAIN: sim.url,
    // The simulator runs on 127.0.0.1 over http, which production (DATABASE_URL set) refuses by default.
    ALLOW_PRIVATE_LARK_DOMAINS: '1',
    BENCH_RATE_LIMIT_SCALE: String(rateLimitScale),
    ...(process.env.BENCH_SLICE_MS ? { BENCH_SLICE_MS: process.env.BENCH_SLICE_MS } : {}),
    ...(process.env.BENCH_READ_AHEAD ? { BENCH_READ_AHEAD: process.env.BENCH_READ_AHEAD } : {}),
    ...(process.env.BENCH_LOG_LEVEL ? { BENCH_LOG_LEVEL: process.env.BENCH_LOG_LEVEL } : {}),
    // larksync's own setting, passed on to compare (0: V8's heap growth, as before it existed).
    ...(process.env.HEAP_GROWING_PERCENT ? { HEAP_GROWING_PERCENT: process.env.HEAP_GROWING_PERCENT } : {}),
  };
}

/** Each measured phase starts from a checkpoint (bench-db.ts); false once the server refused one. */
let checkpointed = true;
const settle = async (env: BenchEnv) => {
  if (!(await checkpoint(env.admin))) checkpointed = false;
};

const larksyncNodeArgs = () => (process.env.BENCH_LARKSYNC_NODE_ARGS ?? '').split(' ').filter(Boolean);

/** One larksync process on a fresh database syncs the table (and optionally reads it again). */
async function larksyncMode(
  env: BenchEnv,
  sim: { child: BenchChild; info: SimInfo },
  label: string,
  rateLimitScale: number,
  reread: boolean,
): Promise<ModeResult> {
  const url = await freshDatabase(env.admin);
  const child = await forkChild('bench/larksync-child.ts', larksyncEnv(url, sim.info, rateLimitScale), larksyncNodeArgs());
  try {
    const ticket = await sim.child.call<string>('ticket');
    await child.call('setup', { appId: APP.appId, ticket, tenant: TENANT, appToken: sim.info.appToken, tableId: sim.info.tableId });
    await settle(env);
    await sim.child.call('resetStats');
    const simCpu0 = cpuSeconds(sim.child.pid);
    const cpu0 = cpuSeconds(child.pid);
    const pg0 = postgresCpuSeconds();
    const stopWatch = watchProgress(url, label, sim.info.records);
    const first = await child.call<RunResult>('sync', { tenant: TENANT, mode: 'full' }).finally(stopWatch);
    const cpu1 = cpuSeconds(child.pid);
    const pg1 = postgresCpuSeconds();
    const simCpu1 = cpuSeconds(sim.child.pid);
    const simStats = await sim.child.call<SimStats>('stats');
    if (first.status !== 'succeeded') throw new Error(`${label}: the run ${first.status}: ${first.error}`);
    await verifyRows(url, label, sim.info, first);
    let second: RunResult | undefined;
    if (reread) {
      await settle(env);
      second = await child.call<RunResult>('sync', { tenant: TENANT, mode: 'full' });
      if (second.status !== 'succeeded') throw new Error(`${label} re-read: the run ${second.status}: ${second.error}`);
      await verifyRows(url, `${label} re-read`, sim.info, undefined);
    }
    const memory = await child.call<{ startup: number; atPeak: Record<string, number> }>('memory');
    return {
      first,
      reread: second,
      // The arrival times make the timeline; results.json keeps the timeline, not 2,000 numbers.
      sim: { ...simStats, callTimes: [] },
      timeline: callTimeline(first, simStats.callTimes),
      memory,
      rssMiB: peakRssMiB(child.pid),
      cpuSec: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
      simCpuSec: simCpu0 === null || simCpu1 === null ? null : simCpu1 - simCpu0,
      pgCpuSec: pg1 - pg0,
    };
  } finally {
    await child.stop();
    // Asked for logs (BENCH_LOG_LEVEL=info): show what larksync said.
    if (process.env.BENCH_LOG_LEVEL) process.stderr.write(child.output.join(''));
    await dropDatabase(env.admin, url);
  }
}

/** A benchmark that loses (or invents) rows is wrong: the table must hold exactly the source. */
async function verifyRows(url: string, label: string, info: SimInfo, run: RunResult | undefined): Promise<void> {
  const live = await countRows(url, `select count(*)::int as n from base_records where tenant_key = $1 and partition = $2 and deleted_at is null`, [
    TENANT,
    `${info.appToken}:${info.tableId}`,
  ]);
  const all = await countRows(url, 'select count(*)::int as n from base_records');
  if (live !== info.records || all !== info.records) {
    throw new Error(`${label}: base_records holds ${live} live rows (${all} in all) for a table of ${info.records} records`);
  }
  if (run && run.counts.base_records !== info.records) {
    throw new Error(`${label}: the run counted ${run.counts.base_records} records for a table of ${info.records}`);
  }
}

/**
 * (c) One larksync process serving the API and running its worker, as `npm start` does: its
 * paced sync of TENANT writes while FEED_TENANT's rows are walked (bench/base-feed.ts).
 */
async function feedMode(env: BenchEnv, sim: { child: BenchChild; info: SimInfo }, rows: number): Promise<FeedResult & { cpuSec: number | null }> {
  const url = await freshDatabase(env.admin);
  const child = await forkChild(
    'bench/larksync-child.ts',
    { ...larksyncEnv(url, sim.info, 1), BENCH_LISTEN: '1', API_TOKEN },
    larksyncNodeArgs(),
  );
  try {
    const ticket = await sim.child.call<string>('ticket');
    await child.call('setup', { appId: APP.appId, ticket, tenant: TENANT, appToken: sim.info.appToken, tableId: sim.info.tableId });
    await child.call('install', { appId: APP.appId, tenant: FEED_TENANT });
    const apiUrl = await child.call<string>('url');
    await settle(env);
    const cpu0 = cpuSeconds(child.pid);
    const result = await feedWalks({ dbUrl: url, child, apiUrl, apiToken: API_TOKEN, syncTenant: TENANT, walkTenant: FEED_TENANT, rows });
    const cpu1 = cpuSeconds(child.pid);
    return { ...result, cpuSec: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0 };
  } finally {
    await child.stop();
    if (process.env.BENCH_LOG_LEVEL) process.stderr.write(child.output.join(''));
    await dropDatabase(env.admin, url);
  }
}

async function baseline(env: BenchEnv, sim: { child: BenchChild; info: SimInfo }, limit: number) {
  const url = await freshDatabase(env.admin);
  const child = await forkChild('bench/base-baseline-child.ts', { DATABASE_URL: url });
  try {
    const args: BaselineArgs = {
      simUrl: sim.info.url,
      appId: APP.appId,
      appSecret: APP.appSecret,
      ticket: await sim.child.call<string>('ticket'),
      tenant: TENANT,
      appToken: sim.info.appToken,
      tableId: sim.info.tableId,
      limit,
    };
    await settle(env);
    const cpu0 = cpuSeconds(child.pid);
    const pg0 = postgresCpuSeconds();
    const result = await child.call<BaselineResult>('run', args);
    const pg1 = postgresCpuSeconds();
    const cpu1 = cpuSeconds(child.pid);
    if (result.records !== limit) throw new Error(`baseline: stored ${result.records} of ${limit} records`);
    return { ...result, rssMiB: peakRssMiB(child.pid), cpuSec: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0, pgCpuSec: pg1 - pg0 };
  } finally {
    await child.stop();
    await dropDatabase(env.admin, url);
  }
}

/**
 * A paced run's time split by the simulator's arrival times of its calls: before the first call
 * (queueing, the slice's start, tokens), the calls themselves (their mean interval against the
 * pacer's, and the time lost in gaps longer than two intervals), and after the last one (the last
 * pages' commits, the completeness check, the run's end).
 */
function callTimeline(run: RunResult, times: number[]): string {
  if (times.length < 2) return 'no calls recorded';
  const sorted = [...times].sort((a, b) => a - b);
  const first = sorted[0]!;
  const last = sorted[sorted.length - 1]!;
  const paceMs = 1000 / 19;
  let lost = 0;
  let longGaps = 0;
  const where: string[] = [];
  for (let i = 1; i < sorted.length; i += 1) {
    const gap = sorted[i]! - sorted[i - 1]!;
    if (gap > 2 * paceMs) {
      longGaps += 1;
      lost += gap - paceMs;
      where.push(`${gap} ms after call ${i} at ${((sorted[i - 1]! - first) / 1000).toFixed(1)} s`);
    }
  }
  const mean = (last - first) / (sorted.length - 1);
  return `created to first call ${first - run.createdAt} ms; ${sorted.length.toLocaleString("en-US")} calls over ${((last - first) / 1000).toFixed(2)} s, ${mean.toFixed(1)} ms apart on average (the pacer's interval ${paceMs.toFixed(1)} ms), ${longGaps} gaps over two intervals losing ${lost.toFixed(0)} ms (${where.slice(0, 8).join(', ')}${where.length > 8 ? ', ...' : ''}); last call to finished ${run.finishedAt - last} ms`;
}

const perSec = (n: number, sec: number) => (sec > 0 ? n / sec : null);
const round = (n: number | null, digits = 0) => (n === null ? null : Number(n.toFixed(digits)));

export async function benchBaseSync(env: BenchEnv): Promise<BenchResult> {
  const records = Number(process.env.BENCH_BASE_RECORDS ?? 1_000_000);
  const baselineRecords = Math.min(records, Number(process.env.BENCH_BASE_BASELINE_RECORDS ?? 100_000));
  const reread = process.env.BENCH_BASE_REREAD !== '0';
  const feedRows = Number(process.env.BENCH_BASE_FEED_ROWS ?? 1_000_000);
  const modes = (process.env.BENCH_BASE_MODES ?? 'unthrottled,paced,feed').split(',').map((m) => m.trim());
  const loadBefore = os.loadavg();
  const wallStart = performance.now();
  console.error('base: compiling the benchmark processes (as npm run build does for production)');
  await compileChildren(['bench/larksync-child.ts', 'bench/simulator-child.ts', 'bench/base-baseline-child.ts']);

  let unthrottled: ModeResult | undefined;
  let hand: Awaited<ReturnType<typeof baseline>> | undefined;
  let paced: ModeResult | undefined;
  let feed: Awaited<ReturnType<typeof feedMode>> | undefined;
  if (modes.includes('unthrottled')) {
    const sim = await startSimulator(records, false);
    try {
      console.error(`base: (a) unthrottled, ${records.toLocaleString('en-US')} records`);
      // Limits lifted on both sides: the simulator admits everything, and larksync's pacer gets
      // 1000x Lark's tiers (it still takes a token per call, as in production).
      unthrottled = await larksyncMode(env, sim, 'unthrottled', 1000, reread);
      console.error(`base: baseline (SDK searchWithIterator + one upsert per record), ${baselineRecords.toLocaleString('en-US')} records`);
      hand = await baseline(env, sim, baselineRecords);
    } finally {
      await sim.child.stop();
    }
  }
  if (modes.includes('paced')) {
    const sim = await startSimulator(records, true);
    try {
      console.error(`base: (b) paced at Lark's limits, ${records.toLocaleString('en-US')} records`);
      paced = await larksyncMode(env, sim, 'paced', 1, false);
    } finally {
      await sim.child.stop();
    }
  }
  if (modes.includes('feed')) {
    const sim = await startSimulator(records, true);
    try {
      console.error(`base: (c) feed walks of ${feedRows.toLocaleString('en-US')} rows while a paced sync writes`);
      feed = await feedMode(env, sim, feedRows);
    } finally {
      await sim.child.stop();
    }
  }
  const loadAfter = os.loadavg();

  const unthrottledRate = unthrottled ? perSec(records, unthrottled.first.seconds) : null;
  const rereadRate = unthrottled?.reread ? perSec(records, unthrottled.reread.seconds) : null;
  const pacedRate = paced ? perSec(records, paced.first.seconds) : null;
  const handRate = hand ? perSec(hand.records, hand.seconds) : null;
  const feedApiRate = feed ? perSec(feed.api.rows, feed.api.seconds) : null;
  const feedLoopRate = feed ? perSec(feed.loop.rows, feed.loop.seconds) : null;
  const rss = [unthrottled?.rssMiB, paced?.rssMiB].filter((r): r is number => typeof r === 'number');
  const peakRss = rss.length > 0 ? Math.max(...rss) : null;
  const calls = unthrottled ?? paced;
  const callsPer1k = calls ? (calls.first.upstreamCalls / records) * 1000 : null;
  const handCallsPer1k = hand ? (hand.pages / hand.records) * 1000 : null;
  const cpuPer100k = unthrottled?.cpuSec != null ? (unthrottled.cpuSec / records) * 100_000 : null;
  const handCpuPer100k = hand?.cpuSec != null ? (hand.cpuSec / hand.records) * 100_000 : null;

  const figures: Figure[] = [
    {
      figure: 'unthrottled sync',
      unit: 'records/s',
      larksync: round(unthrottledRate),
      baseline: round(handRate),
      // Issue 9's goals (each to hold in three consecutive runs).
      goal: '>= 15x baseline',
      ...(unthrottledRate !== null && handRate !== null ? { met: unthrottledRate >= 15 * handRate } : {}),
    },
    {
      figure: 'paced sync, 20 req/s tier (baseline = ceiling 20 x 500)',
      unit: 'records/s',
      larksync: round(pacedRate),
      baseline: CEILING,
      goal: '>= 0.93x ceiling',
      ...(pacedRate !== null ? { met: pacedRate >= 0.93 * CEILING } : {}),
    },
    {
      figure: 'unchanged re-read (baseline rewrites every row)',
      unit: 'records/s',
      larksync: round(rereadRate),
      baseline: round(handRate),
    },
    {
      figure: `feed walk of ${feedRows.toLocaleString('en-US')} rows through the records API, limit=${FEED_PAGE}, while a sync writes (baseline = plain keyset select loop)`,
      unit: 'records/s',
      larksync: round(feedApiRate),
      baseline: round(feedLoopRate),
      goal: '>= 0.8x baseline',
      ...(feedApiRate !== null && feedLoopRate !== null ? { met: feedApiRate >= 0.8 * feedLoopRate } : {}),
    },
    {
      figure: 'peak RSS of the syncing process',
      unit: 'MiB',
      larksync: round(peakRss),
      baseline: round(hand?.rssMiB ?? null),
      goal: 'larksync < 192 MiB (stated for 1,000,000 records)',
      ...(peakRss !== null ? { met: peakRss < 192 } : {}),
    },
    { figure: 'upstream calls per 1,000 records', unit: 'calls', larksync: round(callsPer1k, 2), baseline: round(handCallsPer1k, 2) },
    { figure: 'CPU of the syncing process per 100k records, unthrottled', unit: 's', larksync: round(cpuPer100k, 2), baseline: round(handCpuPer100k, 2) },
    {
      figure: 'CPU of PostgreSQL per 100k records, unthrottled',
      unit: 's',
      larksync: round(unthrottled ? (unthrottled.pgCpuSec / records) * 100_000 : null, 2),
      baseline: round(hand ? (hand.pgCpuSec / hand.records) * 100_000 : null, 2),
    },
  ];

  const fmt = (n: number) => n.toLocaleString('en-US');
  const notes = [
    `full runs over ${fmt(records)} records (${fmt(Math.ceil(records / PAGE))} pages of ${PAGE}); records/s = records / (run finished_at - created_at): queueing, slices, the fields page, the completeness check and cleanup included. The first run starts from an empty table, which has nothing to sweep; the re-read is a full pass with its deletion sweep`,
    checkpointed
      ? 'each measured phase (a sync, the re-read, the baseline, the feed walks) starts after a CHECKPOINT, so none runs beside the checkpointer writing out what the phase before it wrote, or is charged for its CPU'
      : 'the server refused CHECKPOINT (the bench role needs superuser or pg_checkpoint): a phase may run beside the checkpointer writing out what the phase before it wrote, and be charged for its CPU',
    `processes: larksync (bench/larksync-child.ts: production bootstrap, graphile-worker, engine), the simulator (bench/simulator-child.ts) and the baseline (bench/base-baseline-child.ts), each its own Node process running compiled JavaScript; Postgres is the bench server (${process.env.BENCH_DATABASE_URL ? 'BENCH_DATABASE_URL' : 'embedded'}); all on the same ${env.machine.cores} cores`,
    hand
      ? `baseline: the SDK's searchWithIterator against the same unthrottled simulator, over the first ${fmt(hand.records)} records of the same table (${fmt(hand.pages)} pages, ${hand.seconds.toFixed(1)} s); the rate is what is compared`
      : 'baseline not run (BENCH_BASE_MODES without unthrottled)',
    ...(unthrottled
      ? [
          `unthrottled: ${unthrottled.first.seconds.toFixed(1)} s, ${fmt(unthrottled.first.upstreamCalls)} upstream calls by larksync's count (the simulator served ${fmt(unthrottled.sim.searches)} searches and ${unthrottled.sim.fieldLists} field list), ${fmt(unthrottled.first.pages)} pages committed; simulator CPU ${unthrottled.simCpuSec?.toFixed(1) ?? '?'} s${unthrottled.reread ? `; re-read ${unthrottled.reread.seconds.toFixed(1)} s` : ''}; larksync's memory (MiB, sampled every 100 ms): ${unthrottled.memory.startup} resident before the run, at the highest sample ${JSON.stringify(unthrottled.memory.atPeak)}`,
        ]
      : []),
    ...(paced
      ? [
          `paced: ${paced.first.seconds.toFixed(1)} s = ${(((pacedRate ?? 0) / CEILING) * 100).toFixed(1)}% of the ${fmt(CEILING)} records/s ceiling (larksync paces searches at 19/s, so that no one-second window holds more than 20); ${fmt(paced.first.upstreamCalls)} upstream calls, ${paced.first.throttledWaits} throttled waits in larksync, ${paced.sim.throttled} requests refused by the simulator`,
          `paced, where the time went: ${paced.timeline}`,
        ]
      : []),
    ...(feed
      ? [
          `feed: ${fmt(feed.rows)} rows of another tenant (copies of synced records) walked ${FEED_PAGE} at a time by each side in ${feed.slices} alternating slices: API ${feed.api.seconds.toFixed(1)} s over ${fmt(feed.api.pages)} requests following nextCursor, loop ${feed.loop.seconds.toFixed(1)} s over ${fmt(feed.loop.pages)} selects (same columns, no horizon); meanwhile the larksync process serving the API ran ${feed.syncRuns} paced sync run(s) of ${fmt(records)} records and wrote ${fmt(feed.syncRowsDuringWalks)} rows; larksync CPU ${feed.cpuSec?.toFixed(1) ?? '?'} s; seeding took ${feed.seedSeconds.toFixed(1)} s`,
        ]
      : []),
    `rows verified after each larksync run: exactly ${fmt(records)} live rows in base_records`,
    `load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')} (the machine may be shared: compare ratios, which are measured in the same run); wall time ${((performance.now() - wallStart) / 1000).toFixed(0)} s`,
  ];

  return {
    name: 'base',
    title: `Base sync throughput: ${fmt(records)} records`,
    command: reproduce('base', KNOBS),
    baseline: `SDK searchWithIterator (500 per page, sequential) + one INSERT ... ON CONFLICT DO UPDATE per record (pg, autocommit), over ${fmt(hand?.records ?? baselineRecords)} records; paced: Lark's ceiling of 20 req/s x 500 records`,
    figures,
    notes,
    details: {
      records,
      baselineRecords: hand?.records ?? null,
      unthrottled: unthrottled ?? null,
      paced: paced ?? null,
      baseline: hand ?? null,
      feed: feed ?? null,
      loadBefore,
      loadAfter,
    },
  };
}
