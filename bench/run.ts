/**
 * Benchmarks (never fail on time): prints figures and ratios against baselines measured in the
 * same run. Usage: `npm run bench` (embedded Postgres in a temp dir) or with BENCH_DATABASE_URL.
 *
 *  1. Event ingress: pushes acknowledged per second through POST /lark/events (verify signature,
 *     decrypt, seal, store, enqueue), against GET /healthz on the same server as the baseline.
 *  2. Redeliveries: duplicate pushes acknowledged per second (the de-duplication path).
 *  3. Token minting under concurrency: 200 callers in 2 service instances (separate pools, as two
 *     replicas) against a baseline that mints per caller, as the SDK's cache does on a miss.
 *  4. Sync throughput of a Base table (bench/sync.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { startLarksync } from '../src/bootstrap.js';
import { loadConfig } from '../src/config/env.js';
import { Sealer } from '../src/crypto/sealer.js';
import { parseEncryptionKey } from '../src/crypto/encryption-key.js';
import { connectDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { createServices } from '../src/services.js';
import { LarkHttp } from '../src/lark/http.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { benchSync } from './sync.js';
import { benchServer, freshDatabase } from './bench-db.js';

const silent = pino({ level: 'silent' });
const APP = { appId: 'cli_bench_0001', appSecret: 'bench-secret', verificationToken: 'vtok-bench', encryptKey: 'bench-encrypt-key' };

/** Runs `task` `total` times with `concurrency` in flight; returns per-call latencies in ms. */
async function load(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const t0 = performance.now();
        await task(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000, latencies };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};
const fmt = (n: number, d = 0) => n.toFixed(d);

async function benchEvents(admin: string) {
  const sim = new LarkSimulator();
  sim.addApp({ ...APP, kind: 'store' });
  const simUrl = await sim.start();
  const url = await freshDatabase(admin);
  const config = loadConfig({
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
  });
  // The worker is off so the figure is the acknowledgement path alone (processing is asynchronous).
  const larksync = await startLarksync(config, { log: silent, worker: false });
  const eventsUrl = `${larksync.url}/lark/events`;

  const total = Number(process.env.BENCH_EVENTS ?? 4000);
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
  const pushes = Array.from({ length: total }, (_, i) => {
    const plaintext = JSON.stringify({
      schema: '2.0',
      header: { event_id: randomUUID(), token: APP.verificationToken, create_time: String(Date.now()), event_type: 'contact.user.updated_v3', tenant_key: `t${i % 50}`, app_id: APP.appId },
      event: { object: { open_id: `ou_${i}`, name: `User ${i}` } },
    });
    return sim.wireFormat(APP.appId, plaintext);
  });
  const post = async (p: { body: string; headers: Record<string, string> }) => {
    const res = await fetch(eventsUrl, { method: 'POST', body: p.body, headers: p.headers });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`push answered ${res.status}`);
  };

  // Warm-up, then the baseline on the same server.
  await load(300, concurrency, async () => {
    await (await fetch(`${larksync.url}/healthz`)).arrayBuffer();
  });
  const health = await load(total, concurrency, async () => {
    await (await fetch(`${larksync.url}/healthz`)).arrayBuffer();
  });
  const events = await load(total, concurrency, (i) => post(pushes[i]!));
  const dupes = await load(total, concurrency, (i) => post(pushes[i]!));

  const healthRate = total / health.seconds;
  const eventRate = total / events.seconds;
  const dupeRate = total / dupes.seconds;
  console.log(`\n## Event ingress (${total} pushes, ${concurrency} in flight, encrypted + signed)`);
  console.log(`baseline GET /healthz        ${fmt(healthRate)} req/s   p50 ${fmt(pct(health.latencies, 50), 1)} ms  p99 ${fmt(pct(health.latencies, 99), 1)} ms`);
  console.log(`new events acknowledged      ${fmt(eventRate)} ev/s    p50 ${fmt(pct(events.latencies, 50), 1)} ms  p99 ${fmt(pct(events.latencies, 99), 1)} ms  (${fmt(eventRate / healthRate, 2)}x baseline)`);
  console.log(`redeliveries acknowledged    ${fmt(dupeRate)} ev/s    p50 ${fmt(pct(dupes.latencies, 50), 1)} ms  p99 ${fmt(pct(dupes.latencies, 99), 1)} ms  (${fmt(dupeRate / healthRate, 2)}x baseline)`);
  console.log(`max latency ${fmt(Math.max(...events.latencies), 0)} ms against Lark's 3000 ms budget`);

  await larksync.stop();
  await sim.stop();
}

async function benchMints(admin: string) {
  const sim = new LarkSimulator();
  sim.addApp({ ...APP, kind: 'store' });
  const simUrl = await sim.start();
  sim.installTenant(APP.appId, 'tenant-bench');
  const ticket = sim.issueTicket(APP.appId);
  const url = await freshDatabase(admin);
  const key = randomBytes(32).toString('base64');
  const config = loadConfig({
    DATABASE_URL: url,
    ENCRYPTION_KEY: key,
    LARK_APP_ID: APP.appId,
    LARK_APP_SECRET: APP.appSecret,
    LARK_VERIFICATION_TOKEN: APP.verificationToken,
    LARK_DOMAIN: simUrl,
  });
  const replicas = [connectDatabase(url), connectDatabase(url)];
  await migrateToLatest(replicas[0]!.db, url);
  const sealer = new Sealer(parseEncryptionKey(key)!);
  const services = replicas.map((h) => createServices({ config, db: h.db, pool: h.pool, sealer, log: silent }));
  await services[0]!.apps.ensureStoreApp();
  await services[0]!.tickets.save(APP.appId, ticket, new Date(), null);
  await services[0]!.tenants.install({ tenantKey: 'tenant-bench', appId: APP.appId }, null);

  const callers = 200;
  sim.resetCounts();
  const t0 = performance.now();
  const tokens = await Promise.all(
    Array.from({ length: callers }, (_, i) => services[i % 2]!.tokens.getTenantAccessToken('tenant-bench')),
  );
  const ours = performance.now() - t0;
  const oursApp = sim.count('/open-apis/auth/v3/app_access_token');
  const oursTenant = sim.count('/open-apis/auth/v3/tenant_access_token');

  // Baseline: what a per-process cache without single flight does on a cold miss: every caller
  // asks for an app token and then a tenant token.
  sim.resetCounts();
  const http = new LarkHttp(createMetrics());
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      const a = await http.call<{ app_access_token: string }>(simUrl, {
        method: 'POST',
        path: '/open-apis/auth/v3/app_access_token',
        body: { app_id: APP.appId, app_secret: APP.appSecret, app_ticket: ticket },
      });
      await http.call(simUrl, {
        method: 'POST',
        path: '/open-apis/auth/v3/tenant_access_token',
        body: { app_access_token: a.body.app_access_token, tenant_key: 'tenant-bench' },
      });
    }),
  );
  const naive = performance.now() - t1;
  const naiveCalls = sim.count('/open-apis/auth/v3/app_access_token') + sim.count('/open-apis/auth/v3/tenant_access_token');

  console.log(`\n## Token minting: ${callers} concurrent callers in 2 replicas (separate pools, one database)`);
  console.log(`larksync     upstream mints: app ${oursApp}, tenant ${oursTenant}; distinct tokens handed out: ${new Set(tokens).size}; ${fmt(ours, 0)} ms`);
  console.log(`baseline     upstream mints: ${naiveCalls} (no single flight, no shared lock); ${fmt(naive, 0)} ms`);
  console.log(`ratio        ${fmt(naiveCalls / Math.max(1, oursApp + oursTenant), 0)}x fewer upstream token calls`);

  for (const r of replicas) await r.close();
  await sim.stop();
}

const db = await benchServer();
try {
  await benchEvents(db.admin);
  await benchMints(db.admin);
  await benchSync(db.admin);
} finally {
  await db.stop();
}
