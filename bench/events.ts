/**
 * Event ingest (`npm run bench -- events`): signed, encrypted app_ticket and lifecycle pushes sent
 * by autocannon from its own process, at a fixed rate and at saturation, to
 *  - larksync (own process, worker off): verify, decrypt, seal, store and queue every push before
 *    answering, with group commit;
 *  - the baseline (own process): the SDK's EventDispatcher with `adaptDefault` on node:http,
 *    which verifies and decrypts and stores nothing.
 * Afterwards every push larksync acknowledged must be a row in lark_events.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { freshDatabase } from './bench-db.js';
import { compileChildren, forkChild } from './child-ipc.js';
import { peakRssMiB, reproduce, type BenchResult, type Figure } from './report.js';
import type { BenchEnv } from './run.js';

const CHILDREN = { load: 'bench/events-load-child.ts', sdk: 'bench/events-sdk-child.ts', larksync: 'bench/events-larksync-child.ts' };
/** BENCH_CPU_PROF=<dir>: a V8 CPU profile of each child, for where the time goes. */
const NODE_ARGS = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
const APP = { appId: 'cli_bench_events', appSecret: 'bench-events-secret', verificationToken: 'vtok-bench-events', encryptKey: 'bench-events-encrypt-key' };
const KNOBS = ['BENCH_EVENTS', 'BENCH_EVENTS_CONNECTIONS', 'BENCH_EVENTS_RATE', 'BENCH_EVENTS_RATE_SECONDS', 'BENCH_EVENTS_ROUNDS', 'LOG_LEVEL'];

interface LoadResult {
  sent: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  seconds: number;
  latency: { p50: number; p99: number; max: number; mean: number };
}

async function load(target: string, amount: number, connections: number, rate?: number): Promise<LoadResult> {
  const child = await forkChild(CHILDREN.load, {
    TARGET: target,
    APP_ID: APP.appId,
    APP_SECRET: APP.appSecret,
    VERIFICATION_TOKEN: APP.verificationToken,
    ENCRYPT_KEY: APP.encryptKey,
    AMOUNT: String(amount),
    CONNECTIONS: String(connections),
    ...(rate ? { RATE: String(rate) } : {}),
  }, NODE_ARGS);
  try {
    return await child.call<LoadResult>('run');
  } finally {
    await child.stop();
  }
}

interface TargetRun {
  fixed: LoadResult;
  saturated: LoadResult;
  acknowledged: number;
  peakRss: number | null;
}

async function measure(target: string, pid: number, opts: { amount: number; connections: number; rate: number; rateSeconds: number }): Promise<TargetRun> {
  const warm = await load(target, 2_000, opts.connections);
  const fixed = await load(target, opts.rate * opts.rateSeconds, Math.min(opts.connections, 16), opts.rate);
  const saturated = await load(target, opts.amount, opts.connections);
  return { fixed, saturated, acknowledged: warm.ok + fixed.ok + saturated.ok, peakRss: peakRssMiB(pid) };
}

const rateOf = (r: LoadResult) => r.ok / r.seconds;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

function medianLoad(rs: LoadResult[]): LoadResult {
  const ok = rs.reduce((n, r) => n + r.ok, 0);
  return {
    sent: rs.reduce((n, r) => n + r.sent, 0),
    ok,
    non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
    errors: rs.reduce((n, r) => n + r.errors, 0),
    timeouts: rs.reduce((n, r) => n + r.timeouts, 0),
    // The median round's rate, expressed as ok / seconds.
    seconds: ok / median(rs.map(rateOf)),
    latency: {
      p50: median(rs.map((r) => r.latency.p50)),
      p99: median(rs.map((r) => r.latency.p99)),
      max: Math.max(...rs.map((r) => r.latency.max)),
      mean: median(rs.map((r) => r.latency.mean)),
    },
  };
}

function medianRun(runs: TargetRun[]): TargetRun {
  return {
    fixed: medianLoad(runs.map((r) => r.fixed)),
    saturated: medianLoad(runs.map((r) => r.saturated)),
    acknowledged: runs.reduce((n, r) => n + r.acknowledged, 0),
    peakRss: Math.max(...runs.map((r) => r.peakRss ?? 0)),
  };
}

/** Mean pushes per transaction, from larksync's group-commit histogram. */
function meanBatchSize(metrics: string): number {
  const value = (name: string) => {
    const line = metrics.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) : Number.NaN;
  };
  return value('larksync_event_store_batch_size_sum') / value('larksync_event_store_batch_size_count');
}

export async function benchEvents(env: BenchEnv): Promise<BenchResult> {
  const opts = {
    // At about 8,000/s, 20,000 pushes were 2-3 s of saturation, too short for a steady figure.
    amount: Number(process.env.BENCH_EVENTS ?? 60_000),
    connections: Number(process.env.BENCH_EVENTS_CONNECTIONS ?? 64),
    rate: Number(process.env.BENCH_EVENTS_RATE ?? 1_000),
    rateSeconds: Number(process.env.BENCH_EVENTS_RATE_SECONDS ?? 10),
    rounds: Number(process.env.BENCH_EVENTS_ROUNDS ?? 3),
  };
  const batchSizes: number[] = [];
  // Compiled as `npm run build` does, so no child carries tsx's loader as production does not.
  await compileChildren(Object.values(CHILDREN));
  const sim = new LarkSimulator();
  sim.addApp({ ...APP, kind: 'store' });
  const simUrl = await sim.start();

  // Rounds alternate baseline and larksync, so a slow minute on a shared machine does not land
  // on one side only; each figure is the median over the rounds.
  const url = await freshDatabase(env.admin);
  const larksyncEnv = {
    DATABASE_URL: url,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    API_TOKEN: 'bench-api-token-000001',
    LARK_APP_ID: APP.appId,
    LARK_APP_SECRET: APP.appSecret,
    LARK_VERIFICATION_TOKEN: APP.verificationToken,
    LARK_ENCRYPT_KEY: APP.encryptKey,
    LARK_DOMAIN: simUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  };
  const baselineRuns: TargetRun[] = [];
  const ourRuns: TargetRun[] = [];
  for (let round = 0; round < opts.rounds; round += 1) {
    const sdk = await forkChild(CHILDREN.sdk, {
      APP_ID: APP.appId,
      VERIFICATION_TOKEN: APP.verificationToken,
      ENCRYPT_KEY: APP.encryptKey,
    });
    baselineRuns.push(await measure(await sdk.call<string>('url'), sdk.pid, opts));
    await sdk.stop();
    const larksync = await forkChild(CHILDREN.larksync, larksyncEnv, NODE_ARGS);
    const larksyncUrl = await larksync.call<string>('url');
    ourRuns.push(await measure(larksyncUrl, larksync.pid, opts));
    const metrics = await (await fetch(`${larksyncUrl}/metrics`)).text();
    batchSizes.push(meanBatchSize(metrics));
    await larksync.stop();
  }
  await sim.stop();
  const baseline = medianRun(baselineRuns);
  const ours = medianRun(ourRuns);
  const acknowledged = ourRuns.reduce((n, r) => n + r.acknowledged, 0);

  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const stored = Number((await c.query<{ n: string }>(`select count(*)::text as n from lark_events where event_type <> 'url_verification'`)).rows[0]?.n ?? 0);
  await c.end();

  const figures: Figure[] = [
    { figure: `acknowledged at a fixed ${opts.rate}/s`, unit: 'events/s', larksync: rateOf(ours.fixed), baseline: rateOf(baseline.fixed) },
    { figure: 'p50 latency at the fixed rate', unit: 'ms', larksync: ours.fixed.latency.p50, baseline: baseline.fixed.latency.p50 },
    { figure: 'p99 latency at the fixed rate', unit: 'ms', larksync: ours.fixed.latency.p99, baseline: baseline.fixed.latency.p99 },
    {
      figure: `acknowledged at saturation (${opts.connections} connections)`,
      unit: 'events/s',
      larksync: rateOf(ours.saturated),
      baseline: rateOf(baseline.saturated),
      goal: '>= 1x',
      met: rateOf(ours.saturated) >= rateOf(baseline.saturated),
    },
    { figure: 'p50 latency at saturation', unit: 'ms', larksync: ours.saturated.latency.p50, baseline: baseline.saturated.latency.p50 },
    { figure: 'p99 latency at saturation', unit: 'ms', larksync: ours.saturated.latency.p99, baseline: baseline.saturated.latency.p99 },
    { figure: 'max latency at saturation (Lark allows 3000)', unit: 'ms', larksync: ours.saturated.latency.max, baseline: baseline.saturated.latency.max },
    {
      figure: 'acknowledged pushes stored durably',
      unit: '%',
      larksync: acknowledged ? (100 * stored) / acknowledged : null,
      baseline: 0,
      ratio: null,
      goal: '100%',
      met: stored === acknowledged,
    },
    { figure: 'peak RSS of the server process', unit: 'MiB', larksync: ours.peakRss, baseline: baseline.peakRss },
  ];
  const failures = [baseline, ours].flatMap((t) => [t.fixed, t.saturated]).reduce((n, r) => n + r.non2xx + r.errors + r.timeouts, 0);
  return {
    name: 'events',
    title: `Event ingest: ${opts.amount} pushes at saturation, ${opts.rate * opts.rateSeconds} at ${opts.rate}/s (encrypted, signed, v1 app_ticket + lifecycle)`,
    command: reproduce('events', KNOBS),
    baseline: "the official SDK's EventDispatcher + adaptDefault on node:http (verifies, decrypts, stores nothing)",
    figures,
    notes: [
      'autocannon, larksync and the baseline each run in their own process; larksync with its worker off (processing is asynchronous), logging at info as in production',
      `larksync stored ${stored} of ${acknowledged} acknowledged pushes; failed or non-2xx answers across both targets: ${failures}`,
      `${opts.rounds} rounds alternating baseline and larksync; figures are medians (max latency: the largest seen); pushes per group commit: ${batchSizes.map((b) => b.toFixed(1)).join(', ')}`,
    ],
    details: { options: opts, baselineRuns, larksyncRuns: ourRuns, stored, batchSizes },
  };
}
