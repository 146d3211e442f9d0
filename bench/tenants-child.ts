/**
 * The scheduler side of the many-tenants benchmark, in its own OS process so its CPU time is its
 * own: larksync's services on a simulated clock, running one tick of the minute crons
 * (refresh_tokens, then schedule_syncs) whenever the parent says what time it is. With
 * BENCH_POLICY=baseline it runs the crons as they were before spreading (tenants-baseline.ts);
 * with BENCH_POLICY=naive, the same without the refresh cron's 100-per-tick cap.
 * Environment: the store app's (DATABASE_URL, ENCRYPTION_KEY, LARK_*), BENCH_POLICY, BENCH_T0.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { JobHelpers } from 'graphile-worker';
import pg from 'pg';
import { pino } from 'pino';
import { SimulatedClock } from '../src/clock.js';
import { loadConfig } from '../src/config/env.js';
import { parseEncryptionKey } from '../src/crypto/encryption-key.js';
import { Sealer } from '../src/crypto/sealer.js';
import { connectDatabase } from '../src/db/connect.js';
import { createServices } from '../src/services.js';
import { SyncService } from '../src/sync/sync.service.js';
import { createTaskList, FULL_PASS_PERIODS } from '../src/worker/tasks.js';
import { serveParent } from './child-ipc.js';
import { BASELINE_REFRESH_WINDOW, baselineRefreshDue, baselineScheduleDue } from './tenants-baseline.js';

export const SCHEDULER_APP_NAME = 'larksync-bench-scheduler';

export interface TickResult {
  /** user + system CPU of this process during the tick, ms */
  cpuMs: number;
  wallMs: number;
  refreshMs: number;
  scheduleMs: number;
  /** Set when a cron failed this tick (as graphile-worker would, the next tick goes on). */
  error?: string;
}

const policy = process.env.BENCH_POLICY === 'baseline' || process.env.BENCH_POLICY === 'naive' ? process.env.BENCH_POLICY : 'larksync';
const config = loadConfig(process.env);
const key = parseEncryptionKey(config.encryptionKey ?? '');
if (!config.databaseUrl || !key) throw new Error('DATABASE_URL and ENCRYPTION_KEY are required');
const clock = new SimulatedClock(Number(process.env.BENCH_T0));
const handle = connectDatabase(config.databaseUrl, { applicationName: SCHEDULER_APP_NAME });
const services = createServices({
  config,
  db: handle.db,
  pool: handle.pool,
  sealer: new Sealer(key),
  log: pino({ level: 'silent' }),
  tokenOptions: { clock, ...(policy === 'larksync' ? {} : { refreshWindow: BASELINE_REFRESH_WINDOW }) },
});
// services.ts builds the sync service on the system clock; the scheduler here runs on the simulated one.
services.sync = new SyncService(handle.db, clock);
const tasks = createTaskList(services);
// The two crons ignore their helpers.
const helpers = {} as JobHelpers;

/**
 * Postgres time spent for this process: CPU of the server backends serving its connections, read
 * from /proc (same machine only; null otherwise). Sampled after every tick, so a backend that
 * exits loses at most its last tick.
 */
let probe: pg.Client | undefined;
async function probeClient(): Promise<pg.Client> {
  if (probe) return probe;
  const c = new pg.Client({ connectionString: config.databaseUrl, application_name: 'larksync-bench-probe' });
  // A connection cut from outside (another process on a shared server) must not end the run.
  c.on('error', () => {
    if (probe === c) probe = undefined;
  });
  await c.connect();
  probe = c;
  return c;
}
const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();
const backendCpu = new Map<number, { first: number; last: number }>();
let procReadable = true;
function readCpu(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / clockTicks;
  } catch {
    return null;
  }
}
async function sampleBackends(initial: boolean): Promise<void> {
  if (!procReadable) return;
  const client = await probeClient();
  const res = await client.query<{ pid: number }>('select pid from pg_stat_activity where application_name = $1 and datname = current_database()', [
    SCHEDULER_APP_NAME,
  ]);
  for (const { pid } of res.rows) {
    const cpu = readCpu(pid);
    if (cpu === null) {
      procReadable = false;
      return;
    }
    const seen = backendCpu.get(pid);
    if (seen) seen.last = cpu;
    // A backend first seen after the start was opened for the ticks: all its time counts.
    else backendCpu.set(pid, { first: initial ? cpu : 0, last: cpu });
  }
}

// Open the pool's connections before measuring, as a long-running process has them.
await Promise.all(Array.from({ length: 5 }, () => handle.pool.query('select 1')));
await sampleBackends(true);

serveParent(
  {
    tick: async (args: { at: number }): Promise<TickResult> => {
      clock.set(args.at);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const errors: string[] = [];
      // Each cron is its own job: one failing does not stop the other.
      const run = (job: () => Promise<unknown>) => job().catch((err: unknown) => void errors.push((err as Error).message));
      await run(async () => (policy === 'larksync' ? tasks.refresh_tokens!(null, helpers) : baselineRefreshDue(services, clock, policy === 'naive' ? Number.MAX_SAFE_INTEGER : 100)));
      const t1 = performance.now();
      await run(async () => (policy === 'larksync' ? tasks.schedule_syncs!(null, helpers) : baselineScheduleDue(services, clock, FULL_PASS_PERIODS)));
      const t2 = performance.now();
      const cpu = process.cpuUsage(cpu0);
      await sampleBackends(false).catch(() => undefined);
      return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: t2 - t0, refreshMs: t1 - t0, scheduleMs: t2 - t1, ...(errors.length > 0 ? { error: errors.join('; ') } : {}) };
    },
    postgresCpu: async (): Promise<number | null> => {
      if (!procReadable) return null;
      let total = 0;
      for (const b of backendCpu.values()) total += b.last - b.first;
      return total;
    },
  },
  async () => {
    await probe?.end().catch(() => undefined);
    await handle.close();
  },
);
