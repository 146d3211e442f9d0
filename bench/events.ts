/**
 * Event ingest (`npm run bench -- events`): signed, encrypted app_ticket and lifecycle pushes sent
 * by autocannon from its own process, at a fixed rate and at saturation, to
 *  - larksync (own process, worker off): verify, decrypt, seal, store and queue every push before
 *    answering, with group commit;
 *  - the baseline (own process): the SDK's EventDispatcher with `adaptDefault` on node:http,
 *    which verifies and decrypts and stores nothing.
 * Both servers run for the whole benchmark and the saturation load alternates between them in
 * short slices (baseline, larksync, larksync, baseline, ...): on a shared VM the speed of the cores
 * drifts by a quarter over minutes, which one long run per side would put on one side only.
 * Saturation is measured at 64 and at 256 connections, and each side is judged by its best.
 * Afterwards every push larksync acknowledged must be a row in lark_events.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { freshDatabase } from './bench-db.js';
import { compileChildren, forkChild, type BenchChild } from './child-ipc.js';
import { cpuSeconds, peakRssMiB, postgresCpuSeconds, reproduce, type BenchResult, type Figure } from './report.js';
import type { BenchEnv } from './run.js';

const CHILDREN = { load: 'bench/events-load-child.ts', sdk: 'bench/events-sdk-child.ts', larksync: 'bench/events-larksync-child.ts' };
/** BENCH_CPU_PROF=<dir>: a V8 CPU profile of each child, for where the time goes. */
const NODE_ARGS = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
const APP = { appId: 'cli_bench_events', appSecret: 'bench-events-secret', verificationToken: 'vtok-bench-events', encryptKey: 'bench-events-encrypt-key' };
const KNOBS = ['BENCH_EVENTS', 'BENCH_EVENTS_CONNECTIONS', 'BENCH_EVENTS_RATE', 'BENCH_EVENTS_RATE_SECONDS', 'BENCH_EVENTS_SLICES', 'LOG_LEVEL'];

/** CPU seconds over a load: the server process, every PostgreSQL process, the load generator. */
interface CpuUse {
  server: number;
  postgres: number;
  load: number;
  /** the whole machine, every core, from /proc/stat (kernel time included) */
  machine: number;
}

/** CPU seconds the machine has been busy, all cores: everything but idle and iowait. */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return (total - (fields[3] ?? 0) - (fields[4] ?? 0)) / 100;
}

interface LoadResult {
  sent: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  seconds: number;
  latency: { p50: number; p99: number; max: number; mean: number };
  cpu: CpuUse;
}

interface Target {
  name: 'baseline' | 'larksync';
  url: string;
  child: BenchChild;
}

async function load(target: Target, amount: number, connections: number, rate?: number): Promise<LoadResult> {
  const child = await forkChild(CHILDREN.load, {
    TARGET: target.url,
    APP_ID: APP.appId,
    APP_SECRET: APP.appSecret,
    VERIFICATION_TOKEN: APP.verificationToken,
    ENCRYPT_KEY: APP.encryptKey,
    AMOUNT: String(amount),
    CONNECTIONS: String(connections),
    ...(rate ? { RATE: String(rate) } : {}),
  }, NODE_ARGS);
  try {
    const cpuNow = (): CpuUse => ({
      server: cpuSeconds(target.child.pid) ?? 0,
      postgres: postgresCpuSeconds(),
      load: cpuSeconds(child.pid) ?? 0,
      machine: machineBusySeconds(),
    });
    const before = cpuNow();
    const result = await child.call<Omit<LoadResult, 'cpu'>>('run');
    const after = cpuNow();
    const cpu = { server: 0, postgres: 0, load: 0, machine: 0 };
    for (const k of Object.keys(cpu) as Array<keyof CpuUse>) cpu[k] = after[k] - before[k];
    return { ...result, cpu };
  } finally {
    await child.stop();
  }
}

const rateOf = (r: LoadResult) => r.ok / r.seconds;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** Slices of one target taken together: rate over their summed time, CPU per push over all. */
function combine(rs: LoadResult[]): LoadResult {
  const sum = (f: (r: LoadResult) => number) => rs.reduce((n, r) => n + f(r), 0);
  return {
    sent: sum((r) => r.sent),
    ok: sum((r) => r.ok),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    seconds: sum((r) => r.seconds),
    latency: {
      p50: median(rs.map((r) => r.latency.p50)),
      p99: median(rs.map((r) => r.latency.p99)),
      max: Math.max(...rs.map((r) => r.latency.max)),
      mean: median(rs.map((r) => r.latency.mean)),
    },
    cpu: { server: sum((r) => r.cpu.server), postgres: sum((r) => r.cpu.postgres), load: sum((r) => r.cpu.load), machine: sum((r) => r.cpu.machine) },
  };
}

/** CPU microseconds per acknowledged push. */
const cpuPerPush = (r: LoadResult, part: keyof CpuUse) => (r.cpu[part] * 1e6) / Math.max(1, r.ok);

/** Saturation at one number of connections: each side's slices, and larksync's pushes per commit. */
interface Level {
  connections: number;
  baseline: LoadResult[];
  larksync: LoadResult[];
  batchSize: number;
}

/** Sum and count of larksync's group-commit histogram, from its /metrics. */
async function batchHistogram(url: string): Promise<{ sum: number; count: number }> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(metrics.split('\n').find((l) => l.startsWith(`${name} `))?.slice(name.length + 1) ?? Number.NaN);
  return { sum: value('larksync_event_store_batch_size_sum'), count: value('larksync_event_store_batch_size_count') };
}

export async function benchEvents(env: BenchEnv): Promise<BenchResult> {
  const opts = {
    amount: Number(process.env.BENCH_EVENTS ?? 60_000),
    // Saturation is where a server answers no faster however many requests wait. The baseline
    // (one event loop, nothing to wait for) is there at 64 connections; larksync, whose answers
    // wait for a commit, is not (its event loop about 85% busy, the machine a fifth idle), and
    // its batches grow with the connections. Each side's figure is its best over these levels.
    connections: (process.env.BENCH_EVENTS_CONNECTIONS ?? '64,256').split(',').map(Number),
    rate: Number(process.env.BENCH_EVENTS_RATE ?? 1_000),
    rateSeconds: Number(process.env.BENCH_EVENTS_RATE_SECONDS ?? 10),
    // Slices of the saturation load per side and level: 10,000 pushes each by default, 1-2 s.
    slices: Number(process.env.BENCH_EVENTS_SLICES ?? 6),
  };
  const sliceAmount = Math.ceil(opts.amount / opts.slices);
  // Compiled as `npm run build` does, so no child carries tsx's loader as production does not.
  await compileChildren(Object.values(CHILDREN));
  const sim = new LarkSimulator();
  sim.addApp({ ...APP, kind: 'store' });
  const simUrl = await sim.start();
  const url = await freshDatabase(env.admin);

  const sdk = await forkChild(CHILDREN.sdk, { APP_ID: APP.appId, VERIFICATION_TOKEN: APP.verificationToken, ENCRYPT_KEY: APP.encryptKey }, NODE_ARGS);
  const larksync = await forkChild(
    CHILDREN.larksync,
    {
      DATABASE_URL: url,
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      API_TOKEN: 'bench-api-token-000001',
      LARK_APP_ID: APP.appId,
      LARK_APP_SECRET: APP.appSecret,
      LARK_VERIFICATION_TOKEN: APP.verificationToken,
      LARK_ENCRYPT_KEY: APP.encryptKey,
      LARK_DOMAIN: simUrl,
      // The simulator runs on 127.0.0.1 over http, which production (DATABASE_URL set) refuses by default.
      ALLOW_PRIVATE_LARK_DOMAINS: '1',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    },
    NODE_ARGS,
  );
  const targets: Target[] = [
    { name: 'baseline', url: await sdk.call<string>('url'), child: sdk },
    { name: 'larksync', url: await larksync.call<string>('url'), child: larksync },
  ];
  const levels: Level[] = [];
  const fixed = {} as Record<Target['name'], LoadResult>;
  let warmOk = 0;
  let peakRss = { baseline: null as number | null, larksync: null as number | null };
  try {
    for (const t of targets) {
      const warm = await load(t, 2_000, opts.connections[0]!);
      if (t.name === 'larksync') warmOk = warm.ok;
    }
    for (const t of targets) fixed[t.name] = await load(t, opts.rate * opts.rateSeconds, 16, opts.rate);
    const levelOf = new Map<number, Level>(opts.connections.map((connections) => [connections, { connections, baseline: [], larksync: [], batchSize: Number.NaN }]));
    const commits = new Map<number, { sum: number; count: number }>(opts.connections.map((c) => [c, { sum: 0, count: 0 }]));
    // Rounds go through every level, each level alternating its order (baseline, larksync |
    // larksync, baseline): neither side always goes first, and a slow minute of the machine falls
    // on every level alike.
    for (let i = 0; i < opts.slices; i += 1) {
      for (const [k, connections] of opts.connections.entries()) {
        const level = levelOf.get(connections)!;
        const order = (i + k) % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) {
          const before = t.name === 'larksync' ? await batchHistogram(t.url) : undefined;
          const r = await load(t, sliceAmount, connections);
          if (before) {
            const after = await batchHistogram(t.url);
            const c = commits.get(connections)!;
            c.sum += after.sum - before.sum;
            c.count += after.count - before.count;
          }
          level[t.name].push(r);
          process.stderr.write(`  events: round ${i + 1}/${opts.slices}, ${connections} connections, ${t.name}: ${Math.round(rateOf(r))}/s\n`);
        }
      }
    }
    for (const [connections, level] of levelOf) {
      const c = commits.get(connections)!;
      level.batchSize = c.sum / c.count;
      levels.push(level);
    }
    peakRss = { baseline: peakRssMiB(sdk.pid), larksync: peakRssMiB(larksync.pid) };
  } finally {
    await larksync.stop();
    await sdk.stop();
    await sim.stop();
  }
  const perLevel = levels.map((l) => ({ connections: l.connections, baseline: combine(l.baseline), larksync: combine(l.larksync), batchSize: l.batchSize }));
  const all = { baseline: combine(levels.flatMap((l) => l.baseline)), larksync: combine(levels.flatMap((l) => l.larksync)) };
  const best = (side: 'baseline' | 'larksync') => perLevel.reduce((b, l) => (rateOf(l[side]) > rateOf(b[side]) ? l : b));
  const peak = { baseline: best('baseline'), larksync: best('larksync') };
  const acknowledged = all.larksync.ok + fixed.larksync.ok + warmOk;

  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const stored = Number((await c.query<{ n: string }>(`select count(*)::text as n from lark_events`)).rows[0]?.n ?? 0);
  await c.end();

  const levelFigures = perLevel.flatMap((l): Figure[] => [
    { figure: `acknowledged at ${l.connections} connections`, unit: 'events/s', larksync: rateOf(l.larksync), baseline: rateOf(l.baseline) },
    { figure: `p50 latency at ${l.connections} connections`, unit: 'ms', larksync: l.larksync.latency.p50, baseline: l.baseline.latency.p50 },
    { figure: `p99 latency at ${l.connections} connections`, unit: 'ms', larksync: l.larksync.latency.p99, baseline: l.baseline.latency.p99 },
  ]);
  const figures: Figure[] = [
    { figure: `acknowledged at a fixed ${opts.rate}/s`, unit: 'events/s', larksync: rateOf(fixed.larksync), baseline: rateOf(fixed.baseline) },
    { figure: 'p50 latency at the fixed rate', unit: 'ms', larksync: fixed.larksync.latency.p50, baseline: fixed.baseline.latency.p50 },
    { figure: 'p99 latency at the fixed rate', unit: 'ms', larksync: fixed.larksync.latency.p99, baseline: fixed.baseline.latency.p99 },
    ...levelFigures,
    {
      figure: `acknowledged at saturation (each side's best: larksync at ${peak.larksync.connections}, baseline at ${peak.baseline.connections} connections)`,
      unit: 'events/s',
      larksync: rateOf(peak.larksync.larksync),
      baseline: rateOf(peak.baseline.baseline),
      goal: '>= 1x',
      met: rateOf(peak.larksync.larksync) >= rateOf(peak.baseline.baseline),
    },
    { figure: 'max latency at saturation (Lark allows 3000)', unit: 'ms', larksync: all.larksync.latency.max, baseline: all.baseline.latency.max },
    {
      figure: 'acknowledged pushes stored durably',
      unit: '%',
      larksync: acknowledged ? (100 * stored) / acknowledged : null,
      baseline: 0,
      ratio: null,
      goal: '100%',
      met: stored === acknowledged,
    },
    { figure: 'CPU per push at saturation: server process', unit: 'µs', larksync: Math.round(cpuPerPush(all.larksync, 'server')), baseline: Math.round(cpuPerPush(all.baseline, 'server')) },
    {
      figure: 'CPU per push at saturation: server + PostgreSQL',
      unit: 'µs',
      larksync: Math.round(cpuPerPush(all.larksync, 'server') + cpuPerPush(all.larksync, 'postgres')),
      baseline: Math.round(cpuPerPush(all.baseline, 'server') + cpuPerPush(all.baseline, 'postgres')),
    },
    { figure: 'CPU per push at saturation: load generator', unit: 'µs', larksync: Math.round(cpuPerPush(all.larksync, 'load')), baseline: Math.round(cpuPerPush(all.baseline, 'load')) },
    {
      figure: `machine cores busy at saturation (of ${env.machine.cores})`,
      unit: 'cores',
      larksync: all.larksync.cpu.machine / all.larksync.seconds,
      baseline: all.baseline.cpu.machine / all.baseline.seconds,
    },
    { figure: 'peak RSS of the server process', unit: 'MiB', larksync: peakRss.larksync, baseline: peakRss.baseline },
  ];
  const failures = [all.baseline, all.larksync, fixed.baseline, fixed.larksync].reduce((n, r) => n + r.non2xx + r.errors + r.timeouts, 0);
  return {
    name: 'events',
    title: `Event ingest: ${opts.amount} pushes per side at each of ${opts.connections.join(' and ')} connections, ${opts.rate * opts.rateSeconds} at ${opts.rate}/s (encrypted, signed, v1 app_ticket + lifecycle)`,
    command: reproduce('events', KNOBS),
    baseline: "the official SDK's EventDispatcher + adaptDefault on node:http (verifies, decrypts, stores nothing)",
    figures,
    notes: [
      'autocannon, larksync and the baseline each run in their own process; larksync with its worker off (processing is asynchronous), logging at info as in production',
      `saturation: ${opts.slices} rounds, each a slice of ${sliceAmount} pushes per side at every number of connections, the order alternating; rate = pushes / summed slice time; latency percentiles are medians over slices; CPU per push and cores busy over all saturation slices`,
      ...perLevel.map(
        (l, i) =>
          `${l.connections} connections: larksync / baseline per slice pair ${levels[i]!.larksync.map((r, j) => (rateOf(r) / rateOf(levels[i]!.baseline[j]!)).toFixed(2)).join(', ')}; pushes per group commit ${l.batchSize.toFixed(1)}`,
      ),
      `larksync stored ${stored} of ${acknowledged} acknowledged pushes; failed or non-2xx answers across both targets: ${failures}`,
      'PostgreSQL CPU is every postgres process on the machine (backends, WAL writer, checkpointer); machine cores busy is /proc/stat (kernel included)',
    ],
    details: { options: opts, levels, fixed, stored },
  };
}
