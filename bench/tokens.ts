/**
 * Token minting under contention (`npm run bench -- tokens`): one store-app tenant whose stored
 * app_access_token and tenant_access_token have both expired (upstream too: the simulator's clock
 * is moved past their expiry), and 2 OS processes x BENCH_TOKENS_CALLERS / 2 callers (default 200
 * in all) asking for the tenant's token at the same instant. Counted at the simulator: upstream app
 * and tenant token mints (goal: exactly 1 + 1); measured at the callers: each call's latency and
 * the time until the last caller had its token; and how many distinct tokens were handed out.
 *
 * larksync: test/helpers/token-caller.ts, larksync's TokenService in its own process (own pool),
 * both processes on one database. Baseline, same run, same simulator: the official node SDK's ISV
 * client in each process (bench/sdk-token-caller.ts), its default in-memory token cache on, whose
 * cached tenant token has expired: no cross-process or in-flight coordination. BENCH_TOKENS_ROUNDS
 * rounds (default 3) of each, alternating; latency figures are the median round's.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { AUTH_PATHS, LarkSimulator } from '../simulator/lark-simulator.js';
import { loadConfig } from '../src/config/env.js';
import { parseEncryptionKey } from '../src/crypto/encryption-key.js';
import { Sealer } from '../src/crypto/sealer.js';
import { connectDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { createServices } from '../src/services.js';
import { spawnCaller } from '../test/helpers/caller-process.js';
import { freshDatabase } from './bench-db.js';
import { percentile, reproduce, type BenchResult, type Figure } from './report.js';
import type { BenchEnv } from './run.js';

const KNOBS = ['BENCH_TOKENS_CALLERS', 'BENCH_TOKENS_ROUNDS', 'BENCH_DATABASE_URL'];
const APP = { appId: 'cli_bench_tokens', appSecret: 'bench-tokens-secret', verificationToken: 'vtok-bench-tokens' };
const TENANT = 'tenant-bench-tokens';

interface Round {
  appMints: number;
  tenantMints: number;
  distinctTokens: number;
  failed: number;
  durations: number[];
  /** from the common start instant until the last caller had its token */
  allDoneMs: number;
  fireSkewMs: number;
}

async function runRound(script: string, env: Record<string, string>, callers: number, sim: LarkSimulator): Promise<Round> {
  const perProcess = Math.ceil(callers / 2);
  const procs = [spawnCaller(script, { ...env, CALLS: String(perProcess) }), spawnCaller(script, { ...env, CALLS: String(callers - perProcess) })];
  await Promise.all(procs.map((p) => p.ready));
  sim.resetCounts();
  const startAt = Date.now() + 500;
  for (const p of procs) p.start(startAt);
  const reports = await Promise.all(procs.map((p) => p.report));
  const results = reports.flatMap((r) => r.results);
  return {
    appMints: sim.count(AUTH_PATHS.appAccessToken, 0),
    tenantMints: sim.count(AUTH_PATHS.tenantAccessToken, 0),
    distinctTokens: new Set(results.flatMap((r) => (r.ok ? [r.token] : []))).size,
    failed: results.filter((r) => !r.ok).length,
    durations: reports.flatMap((r) => r.durationsMs.filter((d) => d >= 0)),
    allDoneMs: Math.max(...reports.map((r) => r.doneAt)) - startAt,
    fireSkewMs: Math.max(...reports.map((r) => r.firedAt)) - Math.min(...reports.map((r) => r.firedAt)),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? 0;

export async function benchTokens(env: BenchEnv): Promise<BenchResult> {
  const callers = Number(process.env.BENCH_TOKENS_CALLERS ?? 200);
  const rounds = Math.max(1, Number(process.env.BENCH_TOKENS_ROUNDS ?? 3));
  const sim = new LarkSimulator({ apps: [{ ...APP, kind: 'store' }] });
  const simUrl = await sim.start();
  sim.installTenant(APP.appId, TENANT);
  const url = await freshDatabase(env.admin);
  const vars = {
    DATABASE_URL: url,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LARK_APP_ID: APP.appId,
    LARK_APP_SECRET: APP.appSecret,
    LARK_VERIFICATION_TOKEN: APP.verificationToken,
    LARK_DOMAIN: simUrl,
    // The simulator runs on 127.0.0.1 over http, which production (DATABASE_URL set) refuses by default.
    ALLOW_PRIVATE_LARK_DOMAINS: '1',
    LOG_LEVEL: 'silent',
  };
  const handle = connectDatabase(url, { max: 4, applicationName: 'larksync-bench-seed' });
  const ours: Round[] = [];
  const base: Round[] = [];
  try {
    await migrateToLatest(handle.db, url);
    const services = createServices({
      config: loadConfig(vars),
      db: handle.db,
      pool: handle.pool,
      sealer: new Sealer(parseEncryptionKey(vars.ENCRYPTION_KEY)!),
      log: pino({ level: 'silent' }),
    });
    await services.apps.ensureStoreApp();
    const ticket = sim.issueTicket(APP.appId);
    await services.tickets.save(APP.appId, ticket, new Date(), null);
    await services.tenants.install({ tenantKey: TENANT, appId: APP.appId }, null);
    // Both tokens exist, then expire: every round starts from an app and a tenant token past expiry.
    await services.tokens.getTenantAccessToken(TENANT);

    for (let r = 0; r < rounds; r += 1) {
      sim.advanceTime(7200 + 60);
      await sql`update access_tokens set expires_at = now() - interval '1 minute', refresh_at = now() - interval '26 minutes'`.execute(handle.db);
      ours.push(await runRound('test/helpers/token-caller.ts', { ...vars, TENANT_KEY: TENANT, POOL_MAX: '10' }, callers, sim));
      process.stderr.write(`  tokens round ${r + 1}/${rounds} larksync: mints ${ours.at(-1)!.appMints}+${ours.at(-1)!.tenantMints}, all done in ${ours.at(-1)!.allDoneMs} ms\n`);

      sim.advanceTime(7200 + 60);
      base.push(
        await runRound(
          'bench/sdk-token-caller.ts',
          { LARK_DOMAIN: simUrl, LARK_APP_ID: APP.appId, LARK_APP_SECRET: APP.appSecret, APP_TICKET: ticket, TENANT_KEY: TENANT },
          callers,
          sim,
        ),
      );
      process.stderr.write(`  tokens round ${r + 1}/${rounds} SDK: mints ${base.at(-1)!.appMints}+${base.at(-1)!.tenantMints}, all done in ${base.at(-1)!.allDoneMs} ms\n`);
    }
  } finally {
    await handle.close();
    await sim.stop();
    const c = new pg.Client({ connectionString: env.admin });
    await c.connect();
    await c.query(`drop database if exists ${new URL(url).pathname.slice(1)} with (force)`).catch(() => undefined);
    await c.end();
  }

  // The round with the median time-to-last stands for the latency figures; mint counts are the worst round's.
  const pick = (rs: Round[]) => [...rs].sort((a, b) => a.allDoneMs - b.allDoneMs)[Math.floor((rs.length - 1) / 2)]!;
  const o = pick(ours);
  const b = pick(base);
  const worst = (rs: Round[], f: (r: Round) => number) => Math.max(...rs.map(f));
  const fig = (figure: string, unit: string, l: number, bl: number, extra: Partial<Figure> = {}): Figure => ({ figure, unit, larksync: l, baseline: bl, ...extra });
  const figures: Figure[] = [
    fig('upstream app_access_token mints (worst round)', 'calls', worst(ours, (r) => r.appMints), worst(base, (r) => r.appMints), {
      goal: 'exactly 1',
      met: ours.every((r) => r.appMints === 1),
    }),
    fig('upstream tenant_access_token mints (worst round)', 'calls', worst(ours, (r) => r.tenantMints), worst(base, (r) => r.tenantMints), {
      goal: 'exactly 1',
      met: ours.every((r) => r.tenantMints === 1),
    }),
    fig('distinct tenant tokens handed out (worst round)', 'tokens', worst(ours, (r) => r.distinctTokens), worst(base, (r) => r.distinctTokens), {
      goal: '1',
      met: ours.every((r) => r.distinctTokens === 1),
    }),
    fig('failed calls (all rounds)', 'calls', ours.reduce((a, r) => a + r.failed, 0), base.reduce((a, r) => a + r.failed, 0), { goal: '0', ratio: null }),
    fig('caller latency p50', 'ms', percentile(o.durations, 50), percentile(b.durations, 50)),
    fig('caller latency p99', 'ms', percentile(o.durations, 99), percentile(b.durations, 99)),
    fig('caller latency max', 'ms', Math.max(...o.durations), Math.max(...b.durations)),
    fig(`time until all ${callers} callers had a token`, 'ms', o.allDoneMs, b.allDoneMs),
  ];
  return {
    name: 'tokens',
    title: `Token minting under contention: ${callers} callers in 2 processes at one instant, app and tenant token both expired`,
    command: reproduce('tokens', KNOBS),
    baseline: "the official node SDK's ISV client (token cache on) in each of the 2 processes: per-process cache, no cross-process or in-flight coordination",
    figures,
    notes: [
      `${rounds} round(s) of each, alternating; latency from the median round (by time to the last token), mint counts from the worst round.`,
      `Upstream is the simulator in the harness process; larksync's callers share one Postgres database; both processes fired within ${Math.max(o.fireSkewMs, b.fireSkewMs)} ms of each other.`,
      'The SDK never caches app_access_token for a store app: every tenant-token miss costs two upstream calls.',
    ],
    details: {
      callers,
      rounds: { larksync: ours.map(({ durations: _d, ...r }) => r), baseline: base.map(({ durations: _d, ...r }) => r) },
      medianLatencyMs: { larksync: median(o.durations), baseline: median(b.durations) },
    },
  };
}
