import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { call } from '../helpers/sync-api.js';
import { waitFor } from '../helpers/wait.js';

const TENANT = 'tenant-writes-tail';

interface WriteJson {
  id: string;
  status: string;
  readBackPending: number;
}

// Behind a bulk write the read-back trails (batch_get: 100 records a call, 20 calls/s), and the
// Base's job used to finish it before looking for new writes: a write accepted meanwhile waited
// for the whole tail. The job now keeps sending while its read-back catches up.
describe('a write accepted while the read-back trails', () => {
  let stack: Stack;
  let appToken: string;
  let orders: string;

  beforeAll(async () => {
    // Lark's own pace for batch_get (rate-limit scale 1): 6,000 records take 3 s to read back.
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 1 }, data: { enforceRateLimits: false, bitableWrites: { latencyMs: 20 } } });
    await whenReady(stack);
    stack.data.bitable(TENANT, { projects: 5, ledger: 0, orders: 5 });
    await openTenant(stack, TENANT);
    ({ appToken, orders } = stack.data.bitable(TENANT).refs.main);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const post = (records: unknown[]) =>
    call<WriteJson>(stack, 'POST', `/api/v1/tenants/${TENANT}/writes`, { table: { appToken, tableId: orders }, op: 'create', records });
  const get = async (id: string) => (await call<WriteJson>(stack, 'GET', `/api/v1/writes/${id}`)).body;

  it('is sent at once, not after the read-back of the write before it', async () => {
    const bulk = await post(Array.from({ length: 6000 }, (_, i) => ({ fields: { Order: `tail-${i}` } })));
    expect(bulk.status).toBe(202);
    // Lark holds every record; their rows are still being read back.
    await waitFor(async () => {
      const w = await get(bulk.body.id);
      return w.status === 'succeeded' ? w : undefined;
    }, 30_000, 'the bulk write');
    const late = await post([{ fields: { Order: 'late-1' } }]);
    const done = await waitFor(async () => {
      const w = await get(late.body.id);
      return w.status === 'succeeded' ? w : undefined;
    }, 30_000, 'the late write');
    expect(done.status).toBe('succeeded');
    // The late write ended while the bulk one's rows were still being read back.
    expect((await get(bulk.body.id)).readBackPending).toBeGreaterThan(0);
    expect(stack.data.bitable(TENANT).table(appToken, orders).count).toBe(5 + 6000 + 1);
  }, 90_000);
});
