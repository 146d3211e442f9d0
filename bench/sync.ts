/**
 * Sync throughput (part of `npm run bench`): a Base table of BENCH_RECORDS records (default 50 000)
 * synced through the whole engine (paged search, content hash, upsert, checkpoint per page).
 *
 *  - paced: Lark's real limits (search 20/s x 500 records = 10 000 records/s ceiling per tenant),
 *    reported as a fraction of that ceiling;
 *  - unpaced: the engine's own ceiling (limits lifted in larksync and the simulator);
 *  - re-read: the same table again, nothing changed (the content hash skips every write);
 *  - baseline: plain multi-row INSERTs of the same rows, 500 per statement, in the same database.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { startLarksync, type Larksync } from '../src/bootstrap.js';
import { loadConfig } from '../src/config/env.js';
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { SimData } from '../simulator/data/index.js';
import { freshDatabase } from './bench-db.js';

const silent = pino({ level: 'silent' });
const APP = { appId: 'cli_bench_sync', appSecret: 'bench-secret', verificationToken: 'vtok-bench' };
const TENANT = 'tenant-bench-base';

async function waitRun(larksync: Larksync, id: string) {
  for (;;) {
    const r = await larksync.services.sync.get(id);
    if (r && !['queued', 'running'].includes(r.status)) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function syncOnce(admin: string, records: number, paced: boolean) {
  const sim = new LarkSimulator();
  sim.addApp({ ...APP, kind: 'store' });
  const data = new SimData(sim, { enforceRateLimits: paced });
  const simUrl = await sim.start();
  const events = data.bitable(TENANT, { events: records }).refs.big;
  const url = await freshDatabase(admin);
  const config = loadConfig({
    DATABASE_URL: url,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LARK_APP_ID: APP.appId,
    LARK_APP_SECRET: APP.appSecret,
    LARK_VERIFICATION_TOKEN: APP.verificationToken,
    LARK_DOMAIN: simUrl,
    PORT: '0',
    HOST: '127.0.0.1',
  });
  const larksync = await startLarksync(config, {
    log: silent,
    listen: false,
    rateLimitScale: paced ? 1 : 1000,
    engineOptions: { sliceMs: 60_000 },
  });
  const s = larksync.services;
  sim.installTenant(APP.appId, TENANT);
  await s.tickets.save(APP.appId, sim.issueTicket(APP.appId), new Date(), null);
  await s.tenants.install({ tenantKey: TENANT, appId: APP.appId }, null);
  await s.connectors.put(TENANT, 'base', { enabled: true, config: { tables: [{ appToken: events.appToken, tableId: events.events }] } }, 'store');

  const served: number[] = [];
  if (process.env.BENCH_TRACE) data.onPage = (api) => { if (api.includes('search')) served.push(performance.now()); };
  const t0 = performance.now();
  const first = await waitRun(larksync, (await s.sync.trigger(TENANT, 'base', 'full', 'api')).run.id);
  const firstSec = (performance.now() - t0) / 1000;
  if (process.env.BENCH_TRACE) {
    console.log('gaps between searches (ms):', served.slice(1).map((t, i) => Math.round(t - served[i]!)).join(' '));
    console.log(`trigger -> first search ${Math.round(served[0]! - t0)} ms; last search -> finished ${Math.round(t0 + firstSec * 1000 - served.at(-1)!)} ms; run ${first.created_at.toISOString()} .. ${first.finished_at?.toISOString()}`);
  }
  const t1 = performance.now();
  const second = await waitRun(larksync, (await s.sync.trigger(TENANT, 'base', 'full', 'api')).run.id);
  const secondSec = (performance.now() - t1) / 1000;
  await larksync.stop();
  await sim.stop();
  if (first.status !== 'succeeded' || second.status !== 'succeeded') {
    throw new Error(`bench run failed: ${first.error_message ?? second.error_message}`);
  }
  return { url, firstSec, secondSec, first, throttled: first.throttled_waits + second.throttled_waits };
}

async function baselineInserts(url: string, records: number): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('create table bench_plain (tenant_key text, record_key text, raw jsonb, primary key (tenant_key, record_key))');
  const rows = await c.query<{ record_key: string; raw: unknown }>('select record_key, raw from base_records');
  const t0 = performance.now();
  for (let i = 0; i < rows.rows.length; i += 500) {
    const batch = rows.rows.slice(i, i + 500);
    const params: unknown[] = [];
    const values = batch.map((r, j) => {
      params.push('t', r.record_key, JSON.stringify(r.raw));
      return `($${j * 3 + 1}, $${j * 3 + 2}, $${j * 3 + 3})`;
    });
    await c.query(`insert into bench_plain values ${values.join(',')}`, params);
  }
  const sec = (performance.now() - t0) / 1000;
  await c.end();
  return records / sec;
}

export async function benchSync(admin: string): Promise<void> {
  const records = Number(process.env.BENCH_RECORDS ?? 50_000);
  const paced = await syncOnce(admin, records, true);
  const unpaced = await syncOnce(admin, records, false);
  const baseline = await baselineInserts(unpaced.url, records);
  const ceiling = 20 * 500;
  const r = (n: number, s: number) => n / s;
  console.log(`\n## Base sync: ${records} records, 500 per page`);
  console.log(`paced (Lark limits)      ${r(records, paced.firstSec).toFixed(0)} rec/s  (${((r(records, paced.firstSec) / ceiling) * 100).toFixed(0)}% of the 10 000 rec/s API ceiling; ${paced.throttled} throttled waits)`);
  console.log(`unpaced (engine ceiling) ${r(records, unpaced.firstSec).toFixed(0)} rec/s`);
  console.log(`re-read, nothing changed ${r(records, unpaced.secondSec).toFixed(0)} rec/s  (no row rewritten)`);
  console.log(`baseline plain INSERT    ${baseline.toFixed(0)} rec/s  (engine = ${(r(records, unpaced.firstSec) / baseline).toFixed(2)}x baseline)`);
}
