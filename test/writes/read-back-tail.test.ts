import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../helpers/stack.js';
import { postWrite, stackWithOrders, writeEnded } from './orders-table.js';

const TENANT = 'tenant-writes-tail';

// Behind a bulk write the read-back trails (batch_get: 100 records a call, 20 calls/s), and the
// Base's job used to finish it before looking for new writes: a write accepted meanwhile waited
// for the whole tail. The job now keeps sending while its read-back catches up.
describe('a write accepted while the read-back trails', () => {
  let stack: Stack;
  let appToken: string;
  let tableId: string;

  beforeAll(async () => {
    // Lark's own pace for batch_get (rate-limit scale 1): 6,000 records take 3 s to read back.
    ({ stack, appToken, tableId } = await stackWithOrders(TENANT, { rateLimitScale: 1, latencyMs: 20 }));
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const create = (records: unknown[]) => postWrite(stack, TENANT, { table: { appToken, tableId }, op: 'create', records });
  const readBackPending = async (id: string) => (await stack.larksync.services.writes.get(id, { records: false }))!.readBackPending;

  it('is sent at once, not after the read-back of the write before it', async () => {
    const bulk = await create(Array.from({ length: 6000 }, (_, i) => ({ fields: { Order: `tail-${i}` } })));
    // Lark holds every record; their rows are still being read back.
    expect((await writeEnded(stack, bulk)).status).toBe('succeeded');
    const late = await create([{ fields: { Order: 'late-1' } }]);
    const done = await writeEnded(stack, late);
    expect(done.status).toBe('succeeded');
    // The late write ended while the bulk one's rows were still being read back.
    expect(await readBackPending(bulk)).toBeGreaterThan(0);
    expect(stack.data.bitable(TENANT).table(appToken, tableId).count).toBe(6000 + 1);
  }, 90_000);
});
