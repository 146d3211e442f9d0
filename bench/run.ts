/**
 * `npm run bench` runs every benchmark; `npm run bench -- events tokens` runs some of them.
 * Benchmarks print figures against a baseline measured in the same run and never fail on time.
 * Each prints the command that reproduces it and merges its figures into bench/results.json.
 * Databases: BENCH_DATABASE_URL (an admin URL), else an embedded PostgreSQL in a temp folder.
 */
import pg from 'pg';
import { benchServer } from './bench-db.js';
import { describeMachine, printResult, saveResult, type BenchResult, type Machine } from './report.js';

export interface BenchEnv {
  /** admin URL of the bench server; `freshDatabase(admin)` gives each benchmark its own database */
  admin: string;
  machine: Machine;
}

type Benchmark = (env: BenchEnv) => Promise<BenchResult>;

const BENCHMARKS: Record<string, () => Promise<Benchmark>> = {
  events: async () => (await import('./events.js')).benchEvents,
  base: async () => (await import('./base-sync.js')).benchBaseSync,
  tokens: async () => (await import('./tokens.js')).benchTokens,
  tenants: async () => (await import('./tenants.js')).benchTenants,
  contention: async () => (await import('./contention.js')).benchContention,
  writes: async () => (await import('./writes.js')).benchWrites,
  subscriptions: async () => (await import('./subscriptions.js')).benchSubscriptions,
  docs: async () => (await import('./docs-sync.js')).benchDocsSync,
  realtime: async () => (await import('./realtime.js')).benchRealtime,
};

const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = asked.filter((a) => !(a in BENCHMARKS));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; choose from ${Object.keys(BENCHMARKS).join(', ')}`);
  process.exit(2);
}
const selected = asked.length > 0 ? asked : Object.keys(BENCHMARKS);

const server = await benchServer();
try {
  const c = new pg.Client({ connectionString: server.admin });
  await c.connect();
  const version = (await c.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v;
  await c.end();
  const machine = describeMachine(version ? `PostgreSQL ${version}` : undefined);
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, ${machine.postgres ?? ''}`);
  for (const name of selected) {
    const bench = await BENCHMARKS[name]!();
    const result = await bench({ admin: server.admin, machine });
    printResult(result);
    saveResult(result, machine);
  }
} finally {
  await server.stop();
}
