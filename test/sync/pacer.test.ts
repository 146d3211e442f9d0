import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DbHandle } from '../../src/db/connect.js';
import { Pacer } from '../../src/sync/pacer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
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
