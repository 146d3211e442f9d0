import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

describe('fairness between tenants', () => {
  let stack: Stack;
  beforeAll(async () => {
    // One worker slot, short slices: the only way a small tenant finishes first is by slices
    // of the huge tenant's run yielding the slot.
    stack = await startStack({
      encrypt: false,
      env: { WORKER_CONCURRENCY: '1' },
      data: { enforceRateLimits: false },
      start: { engineOptions: { sliceMs: 300 }, rateLimitScale: 50 },
    });
    await whenReady(stack);
    stack.data.contactShape = { topLevel: 6, childrenPerDepartment: 3, depth: 3, usersPerDepartment: 60, rootUsers: 5 };
    stack.data.contact('tenant-huge');
    stack.data.contactShape = { topLevel: 1, childrenPerDepartment: 1, depth: 1, usersPerDepartment: 3, rootUsers: 1 };
    stack.data.contact('tenant-small');
    for (const t of ['tenant-huge', 'tenant-small']) {
      await openTenant(stack, t);
      await stack.larksync.services.connectors.put(t, 'contact', { enabled: true, config: {} }, 'store');
    }
    stack.sim.injectFault({ path: '/open-apis/contact/v3/users/find_by_department', delayMs: 30, count: 1_000_000 });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('a small tenant queued behind a huge one finishes first', async () => {
    const huge = await stack.larksync.services.sync.trigger('tenant-huge', 'contact', 'full', 'api');
    await waitFor(async () => ((await stack.larksync.services.sync.get(huge.run.id))?.pages ?? 0) >= 3, 20_000, 'huge started');
    const small = await stack.larksync.services.sync.trigger('tenant-small', 'contact', 'full', 'api');
    const smallDone = await waitFor(async () => {
      const r = await stack.larksync.services.sync.get(small.run.id);
      return r?.status === 'succeeded' ? r : undefined;
    }, 30_000, 'small done');
    const hugeNow = await stack.larksync.services.sync.get(huge.run.id);
    expect(hugeNow?.status).toBe('running');
    expect(smallDone.counts.contact_users).toBe(stack.data.contact('tenant-small').users.size);
    // The huge run is not part of the claim; stop it rather than wait for it.
    await stack.larksync.services.sync.cancel(huge.run.id);
  }, 120_000);
});
