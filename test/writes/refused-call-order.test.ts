import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../helpers/stack.js';
import { postWrite, stackWithOrders, writeEnded } from './orders-table.js';
import { textOf } from '../../simulator/data/bitable/table.js';

/**
 * A call Lark refuses as a whole (1254607, "data not ready") is replaced by smaller calls in its
 * place; the call planned behind it while it was in flight (stored already counted as sent, so
 * that it can leave without a round trip) was never sent, so its records are planned again after
 * the replacements: the records reach the table in the order they were accepted, each once.
 */
const TENANT = 'tenant-refused-call-order';

describe('a refused call and the call planned behind it', () => {
  let stack: Stack;
  let appToken: string;
  let tableId: string;

  beforeAll(async () => {
    ({ stack, appToken, tableId } = await stackWithOrders(TENANT, { rateLimitScale: 20, latencyMs: 60 }));
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('replaces the refused call in its place and plans the one behind it again after the replacements', async () => {
    const tenant = stack.data.bitable(TENANT);
    const table = tenant.table(appToken, tableId);
    tenant.injectWriteFault({ code: 1254607, appToken, api: 'batch_create', count: 1 });
    const id = await postWrite(stack, TENANT, {
      table: { appToken, tableId },
      op: 'create',
      records: Array.from({ length: 2_500 }, (_, i) => ({ fields: { Order: `S-${i}` } })),
    });
    const w = await writeEnded(stack, id);
    expect(w.status).toBe('succeeded');
    const stats = tenant.writeStats(appToken);
    // 1,000 refused, then 500-record calls (the table's limit halved).
    expect(stats.batchSizes).toEqual([1000, 500, 500, 500, 500, 500]);
    expect(stats.notReady + stats.overlaps).toBe(0);
    expect(Array.from({ length: table.count }, (_, i) => textOf(table.nth(i)?.fields.Order))).toEqual(Array.from({ length: 2_500 }, (_, i) => `S-${i}`));
  });
});
