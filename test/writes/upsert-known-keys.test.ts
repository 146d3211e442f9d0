import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { Stack } from '../helpers/stack.js';
import { stackWithOrders } from './orders-table.js';
import { textOf } from '../../simulator/data/bitable/table.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Upserts find their records from what larksync holds (base_records and the calls not read back
 * yet) when that is every record Lark lists, instead of reading the key field from Lark first
 * (200 search calls, 10 s with the Base idle, for a 100,000-record table); and fall back to Lark
 * whenever it is not.
 */
const TENANT = 'tenant-upsert-known-keys';

interface WriteJson {
  id: string;
  status: string;
  readBackPending: number;
  records?: Array<{ index: number; state: string; recordId: string | null }>;
}

describe('upserts matched from the rows larksync holds', () => {
  let stack: Stack;
  let appToken: string;
  let tableId: string;

  beforeAll(async () => {
    ({ stack, appToken, tableId } = await stackWithOrders(TENANT, { rateLimitScale: 20, latencyMs: 20 }));
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const table = () => stack.data.bitable(TENANT).table(appToken, tableId);
  const searches = () => stack.sim.count(`/open-apis/bitable/v1/apps/${appToken}/tables/${tableId}/records/search`);
  const write = async (op: 'create' | 'upsert', records: unknown[]): Promise<WriteJson> => {
    const res = await stack.api('POST', `/api/v1/tenants/${TENANT}/writes`, { table: { appToken, tableId }, op, records });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    return waitFor(async () => {
      const r = await stack.api('GET', `/api/v1/writes/${id}`);
      const w = (await r.json()) as WriteJson;
      return ['queued', 'running'].includes(w.status) || w.readBackPending > 0 ? undefined : w;
    }, 30_000, `write ${id}`);
  };
  const keysOf = () => Array.from({ length: table().count }, (_, i) => textOf(table().nth(i)?.fields.Order) ?? '');

  it('matches from base_records with one search call (the table total), whatever the table size', async () => {
    expect((await write('create', Array.from({ length: 1_200 }, (_, i) => ({ fields: { Order: `K-${i}`, Qty: 1 } })))).status).toBe('succeeded');
    const before = searches();
    // 120 upserts: reading the field would take 3 pages of 500, searching the values 3 calls of 50.
    const up = await write(
      'upsert',
      Array.from({ length: 120 }, (_, i) => (i % 2 === 0 ? { match: { Order: `K-${i * 10}` }, fields: { Qty: 42 } } : { match: { Order: `N-${i}` }, fields: { Qty: 43 } })),
    );
    expect(up.status).toBe('succeeded');
    expect(searches() - before).toBe(1);
    const keys = keysOf();
    expect(keys).toHaveLength(1_260);
    expect(new Set(keys).size).toBe(1_260);
    for (let i = 0; i < 120; i += 2) {
      const r = table().get(up.records![i]!.recordId!)!;
      expect([textOf(r.fields.Order), r.fields.Qty]).toEqual([`K-${i * 10}`, 42]);
    }
  });

  it('a value whose create is still in flight ends the chunk planned meanwhile: its second upsert updates that record', async () => {
    const count = table().count;
    // D-5 comes again at 1,500: planned while the call creating D-0..D-999 is in flight (slow calls).
    stack.data.bitableWrites.latencyMs = 600;
    const up = await write(
      'upsert',
      Array.from({ length: 2_600 }, (_, i) => (i === 1_500 ? { match: { Order: 'D-5' }, fields: { Qty: 77_777 } } : { match: { Order: `D-${i}` }, fields: { Qty: i } })),
    ).finally(() => {
      stack.data.bitableWrites.latencyMs = 20;
    });
    expect(up.status).toBe('succeeded');
    expect(table().count).toBe(count + 2_599);
    const d5 = keysOf().filter((k) => k === 'D-5');
    expect(d5).toHaveLength(1);
    expect(up.records![1_500]!.recordId).toBe(up.records![5]!.recordId);
    expect(table().get(up.records![5]!.recordId!)!.fields.Qty).toBe(77_777);
  });

  it('a call answered but not read back yet counts: its records are matched, not created again', async () => {
    const made = await write('create', [{ fields: { Order: 'W-1' } }, { fields: { Order: 'W-2' } }]);
    const ids = made.records!.map((r) => r.recordId!);
    // As if the read-back had not happened yet: the rows are not in base_records, the call is 'written'.
    await sql`delete from base_records where tenant_key = ${TENANT} and record_id = any(${ids}::text[])`.execute(stack.db.db);
    await sql`update base_write_batches set status = 'written' where id in (select batch_id from base_write_records where record_id = any(${ids}::text[]))`.execute(stack.db.db);
    const count = table().count;
    const before = searches();
    const up = await write('upsert', [{ match: { Order: 'W-1' }, fields: { Qty: 5 } }, { match: { Order: 'W-2' }, fields: { Qty: 6 } }]);
    expect(up.records!.map((r) => r.recordId)).toEqual(ids);
    expect(table().count).toBe(count);
    expect(searches() - before).toBe(1);
  });

  it('a record created in Lark that larksync does not hold is found in Lark: updated, not doubled', async () => {
    const [outside] = table().add([{ Order: 'OUT-1', Qty: 1 }]);
    const count = table().count;
    const up = await write('upsert', [{ match: { Order: 'OUT-1' }, fields: { Qty: 9 } }]);
    expect(up.records![0]!.recordId).toBe(outside!.record_id);
    expect(table().count).toBe(count);
    expect(table().get(outside!.record_id)!.fields.Qty).toBe(9);
  });

  it('a key changed in Lark behind larksync (the count unchanged) is caught by the first page: matched in Lark', async () => {
    // Count larksync's rows level with Lark's again (OUT-1 was read back after its update).
    const first = table().nth(0)!;
    table().edit(first.record_id, { Order: 'MOVED-1' });
    const count = table().count;
    const up = await write('upsert', [{ match: { Order: 'MOVED-1' }, fields: { Qty: 11 } }]);
    expect(up.records![0]!.recordId).toBe(first.record_id);
    expect(table().count).toBe(count);
  });
});
