import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DbHandle } from '../../src/db/connect.js';
import { LarkHttp } from '../../src/lark/http.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { Pacer, perSecond } from '../../src/sync/pacer.js';
import { SyncLarkClient } from '../../src/sync/sync-lark-client.js';
import type { TenantTokens } from '../../src/tokens/tokens.service.js';
import { countingKysely, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

describe('pacing', () => {
  let db: TestDatabase;
  let second: DbHandle;
  beforeAll(async () => {
    db = await createTestDatabase();
    second = connectDatabase(db.url);
  });
  afterAll(async () => {
    await second?.close();
    await db?.drop();
  });

  it('two processes drawing from one bucket together stay within its rate', async () => {
    // Two pools stand for two replicas: the budget lives in Postgres, not in either process.
    const a = new Pacer(db.db);
    const b = new Pacer(second.db);
    const limit = { perSecond: 20, burst: 5 };
    const started = Date.now();
    const takes = 45;
    await Promise.all(Array.from({ length: takes }, (_, i) => (i % 2 ? a : b).take('app:tenant:api', limit)));
    const elapsed = (Date.now() - started) / 1000;
    // 5 come from the burst, the other 40 at 20/s: at least 2 s.
    expect(elapsed).toBeGreaterThanOrEqual((takes - limit.burst) / limit.perSecond - 0.1);
    expect(elapsed).toBeLessThan(6);
  });

  it('callers of one process taking together spend one token each (a reservation made ahead is never dropped)', async () => {
    // The write applier's read-back sends a call's batch_gets together; each waiting caller used to
    // reserve its next token ahead over the previous caller's reservation, wasting one token per
    // caller and halving the rate.
    const p = new Pacer(db.db);
    const limit = { perSecond: 20, burst: 1 };
    await p.take('app:tenant:together', limit);
    const started = Date.now();
    // Three rounds of ten callers, one round after the other (a call's batch_gets, then the next call's).
    for (let round = 0; round < 3; round += 1) {
      await Promise.all(Array.from({ length: 10 }, () => p.take('app:tenant:together', limit)));
    }
    const elapsed = (Date.now() - started) / 1000;
    // 30 tokens at 20/s: about 1.5 s (nearly 3 s with the waste).
    expect(elapsed).toBeGreaterThanOrEqual(1.4);
    expect(elapsed).toBeLessThan(2.1);
  });

  it("gathers the takes asked at once into one statement per round of distinct buckets, each paced by its own bucket", async () => {
    // At 200 change events a second each upstream call's take was a statement of its own.
    const counted = countingKysely(db, /rate_buckets/);
    const p = new Pacer(counted.db);
    const limit = { perSecond: 10, burst: 1 };
    const tenants = Array.from({ length: 8 }, (_, i) => `app:t-${i}:gathered`);
    const started = Date.now();
    await Promise.all(tenants.map((b) => p.take(b, limit)));
    // Eight buckets with a token each: no wait, one statement (eight before).
    expect(Date.now() - started).toBeLessThan(500);
    expect(counted.seen).toHaveLength(1);
    counted.seen.length = 0;
    // Three takes of one bucket at once: one round each (a statement touches a row once), and
    // the bucket paces them, 100 ms apart at 10/s.
    const waits = await Promise.all([0, 1, 2].map(() => p.take('app:t-one:gathered', limit)));
    expect(counted.seen.length).toBeGreaterThanOrEqual(3);
    expect(waits.sort((a, b) => a - b)[2]).toBeGreaterThanOrEqual(180);
    const row = await db.db.selectFrom('rate_buckets').select('tokens').where('bucket', '=', 'app:t-0:gathered').executeTakeFirstOrThrow();
    expect(Number(row.tokens)).toBeCloseTo(0, 0);
  });

  it('paces each call with its token in hand: a slow token lookup cannot bunch sends (Lark counts arrivals)', async () => {
    // A real HTTP server stands for Lark and notes when each call arrives.
    const arrivals: number[] = [];
    const server = http.createServer((_req, res) => {
      arrivals.push(Date.now());
      res.setHeader('content-type', 'application/json');
      res.end('{"code":0,"data":{}}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      // The first call's token lookup is slow (a database read under load); the others' are not.
      let lookups = 0;
      const tokens = {
        tenantKey: 't-slow',
        app: { appId: 'cli_slow', baseUrl: url },
        withToken: async <T>(call: (token: string, baseUrl: string) => Promise<T>): Promise<T> => {
          lookups += 1;
          if (lookups === 1) await new Promise((r) => setTimeout(r, 600));
          return call('t-token', url);
        },
      } as unknown as TenantTokens;
      const metrics = createMetrics();
      const limits = { 'docx.document.get': perSecond(5) };
      const client = new SyncLarkClient({ http: new LarkHttp(metrics), metrics }, tokens, new Pacer(db.db), limits, { upstreamCalls: 0, throttledWaits: 0 }, async () => undefined);
      await Promise.all(Array.from({ length: 6 }, () => client.call('docx.document.get', { method: 'GET', path: '/open-apis/docx/v1/documents/x' })));
      expect(arrivals).toHaveLength(6);
      // Paced at 4/s (perSecond(5)): 250 ms apart as they arrive (75 ms left for jitter). Paced before
      // the lookup, the slow call was sent 600 ms after its token, 100 ms after the call paced at 500 ms.
      const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]!);
      expect(Math.min(...gaps), JSON.stringify(gaps)).toBeGreaterThanOrEqual(175);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('buckets are per (app, tenant, API): another tenant is not slowed', async () => {
    const p = new Pacer(db.db);
    const limit = { perSecond: 1, burst: 1 };
    await p.take('app:t1:api', limit);
    const started = Date.now();
    await p.take('app:t2:api', limit);
    expect(Date.now() - started).toBeLessThan(200);
  });
});

describe('a paced run against a simulator that enforces Lark limits', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: false, data: { enforceRateLimits: true } });
    await whenReady(stack);
    await openTenant(stack, 'tenant-paced');
    await stack.larksync.services.connectors.put('tenant-paced', 'contact', { enabled: true, config: {} }, 'store');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('is never throttled', async () => {
    const { run } = await stack.larksync.services.sync.trigger('tenant-paced', 'contact', 'full', 'api');
    const done = await waitFor(async () => {
      const r = await stack.larksync.services.sync.get(run.id);
      return r?.status === 'succeeded' ? r : undefined;
    }, 30_000, 'run');
    expect(done.throttled_waits).toBe(0);
    expect(stack.data.limiter.throttled).toBe(0);
  });
});
