import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DbHandle } from '../../src/db/connect.js';
import { Pacer } from '../../src/sync/pacer.js';
import { BASE_LIMITS } from '../../src/connectors/base/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { runToEnd } from '../helpers/runs.js';

/** The most calls that fall in any window of `spanMs` (closed on both ends). */
function busiestWindow(times: number[], spanMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i += 1) {
    while (t[i]! - t[j]! > spanMs) j += 1;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

describe('per-second tiers', () => {
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

  it("never let more than Lark's 20 search calls into any one-second window, from two replicas, even after an idle spell", async () => {
    const replicas = [new Pacer(db.db), new Pacer(second.db)];
    const limit = BASE_LIMITS['bitable.records.search'];
    const granted: number[] = [];
    // Two replicas calling as fast as they are let through; half-way, everyone pauses (a full
    // bucket is the moment a big burst would slip through), then goes on.
    const caller = async (p: Pacer, n: number) => {
      for (let i = 0; i < n; i += 1) {
        await p.take('app:tenant:search', limit);
        granted.push(performance.now());
      }
    };
    await Promise.all(replicas.map((p) => caller(p, 10)));
    await new Promise((r) => setTimeout(r, 1_200));
    const started = performance.now();
    await Promise.all(replicas.map((p) => caller(p, 12)));
    expect(busiestWindow(granted, 1_000)).toBeLessThanOrEqual(20);
    // ...while keeping close to the tier: 24 calls after the pause at 19/s.
    expect((performance.now() - started) / 1000).toBeLessThan(24 / 19 + 0.5);
  }, 30_000);
});

describe('a Base run paced at Lark’s real limits', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: false, data: { enforceRateLimits: true } });
    await whenReady(stack);
    const data = stack.data.bitable('tenant-paced-base', { events: 15_000, projects: 0, ledger: 0, tasks: 0 });
    await openTenant(stack, 'tenant-paced-base');
    const { appToken, events } = data.refs.big;
    await stack.larksync.services.connectors.put('tenant-paced-base', 'base', { enabled: true, config: { tables: [{ appToken, tableId: events }] } }, 'store');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('reads 30 pages of 500 with pages read ahead and is never throttled', async () => {
    const run = await runToEnd(stack, 'tenant-paced-base', 'base', 'full', 30_000);
    expect(run.status).toBe('succeeded');
    expect(run.counts.base_records).toBe(15_000);
    expect(run.throttled_waits).toBe(0);
    expect(stack.data.limiter.throttled).toBe(0);
  }, 40_000);
});
