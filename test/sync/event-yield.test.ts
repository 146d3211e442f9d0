import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBacklog } from '../../src/events/event-backlog.js';
import { openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';

// Change events first: while events wait to be handled (a shard awake), each sync page waits up
// to eventYieldMs before it commits (src/events/event-backlog.ts). Bounded: a steady stream of
// events slows a sync, never stops it.

const TENANT = 'tenant-event-yield';
const YIELD_MS = 300;

describe('a sync page yields to waiting change events', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      encrypt: false,
      data: { enforceRateLimits: false, contactShape: { topLevel: 2, childrenPerDepartment: 2, depth: 2, usersPerDepartment: 30, rootUsers: 2 } },
      start: { engineOptions: { eventYieldMs: YIELD_MS } },
    });
    await whenReady(stack);
    await openTenant(stack, TENANT);
    await stack.larksync.services.connectors.put(TENANT, 'contact', { enabled: false, config: {} }, 'store');
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const awake = (on: boolean) =>
    sql`insert into lark_event_shards (shard, awake) values (0, ${on}) on conflict (shard) do update set awake = excluded.awake`.execute(stack.db.db);

  async function timedRun(): Promise<{ ms: number; pages: number }> {
    const { run } = await stack.larksync.services.sync.trigger(TENANT, 'contact', 'full', 'api');
    for (;;) {
      const r = (await stack.larksync.services.sync.get(run.id))!;
      if (!['queued', 'running'].includes(r.status)) {
        expect(r.status).toBe('succeeded');
        return { ms: r.finished_at!.getTime() - r.started_at!.getTime(), pages: r.pages };
      }
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  /** Longer than the engine's backlog cache (250 ms), so the next run sees the flag as set. */
  const settle = () => new Promise((res) => setTimeout(res, 400));

  it('waits about eventYieldMs per page while a shard is awake, and not at all once none is', async () => {
    await awake(false);
    await settle();
    const free = await timedRun();
    // A shard kept awake, as a steady stream of events keeps one (a drain of some earlier event
    // may clear the flag once): every page waits its full allowance.
    await awake(true);
    await settle();
    const keep = setInterval(() => void awake(true), 20);
    const held = await timedRun().finally(() => clearInterval(keep));
    await awake(false);
    console.log(`event yield: ${held.pages} pages, ${held.ms} ms with a shard awake; ${free.pages} pages, ${free.ms} ms without`);
    expect(held.pages).toBeGreaterThanOrEqual(3);
    expect(held.ms).toBeGreaterThanOrEqual(held.pages * YIELD_MS * 0.9);
    expect(free.ms).toBeLessThan(held.ms - held.pages * YIELD_MS * 0.5);
  }, 60_000);

  it('the backlog check answers from its cache between asks, and a pause ends when the events are taken up', async () => {
    const backlog = new EventBacklog(stack.db.db, 100);
    await awake(true);
    expect(await backlog.waiting()).toBe(true);
    setTimeout(() => void awake(false), 150);
    const t0 = Date.now();
    await backlog.yieldTo(2_000);
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(150);
    expect(waited).toBeLessThan(1_000);
    expect(await backlog.waiting()).toBe(false);
  });
});
