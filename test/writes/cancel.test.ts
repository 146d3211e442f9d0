import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { Stack } from '../helpers/stack.js';
import { postWrite, stackWithOrders, writeEnded } from './orders-table.js';
import { waitFor } from '../helpers/wait.js';
import type { WriteView } from '../../src/writes/writes.service.js';

/**
 * Cancelling a write stops what has not been sent; what was written stays written, and the write
 * says so: partial when some records were written, succeeded when all were (and only their
 * read-back into base_records was left), never "cancelled" over records Lark holds.
 */
const TENANT = 'tenant-write-cancel';

describe('cancelling a write', () => {
  let stack: Stack;
  let appToken: string;
  let tableId: string;

  beforeAll(async () => {
    // Lark's tiers as documented (batch_get 20/s), so reading 3,000 rows back takes over a second.
    ({ stack, appToken, tableId } = await stackWithOrders(TENANT, { rateLimitScale: 1, latencyMs: 60 }));
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const create = async (n: number, prefix: string): Promise<string> => {
    return postWrite(stack, TENANT, {
      table: { appToken, tableId },
      op: 'create',
      records: Array.from({ length: n }, (_, i) => ({ fields: { Order: `${prefix}-${i}` } })),
    });
  };
  const view = async (id: string) => (await stack.larksync.services.writes.get(id, { records: false }))!;
  const cancel = async (id: string) => {
    const res = await stack.api('POST', `/api/v1/writes/${id}/cancel`);
    expect(res.status).toBe(200);
    return (await res.json()) as WriteView;
  };
  const finished = (id: string) => writeEnded(stack, id, { readBack: true });

  it('after every record was written, while the rows are read back: the write still succeeds', async () => {
    const id = await create(3_000, 'all');
    // Lark holds every record (the write has succeeded); the rows may still be read back into base_records.
    await waitFor(async () => {
      const w = await view(id);
      return w.counts.ok === w.counts.total;
    }, 30_000, 'every record written');
    const answered = await cancel(id);
    expect(answered.status).toBe('succeeded');
    const w = await finished(id);
    expect(w.status).toBe('succeeded');
    expect(w.counts).toMatchObject({ total: 3_000, ok: 3_000, cancelled: 0 });
    const rows = await sql<{ n: number }>`select count(*)::int as n from base_records where tenant_key = ${TENANT} and fields->'Order'->0->>'text' like 'all-%'`.execute(stack.db.db);
    expect(rows.rows[0]?.n).toBe(3_000);
  });

  it('midway: the records written stay written and the write is partial', async () => {
    const id = await create(6_000, 'half');
    await waitFor(async () => (await view(id)).counts.ok >= 1_000, 30_000, 'a first call answered');
    await cancel(id);
    const w = await finished(id);
    expect(w.status).toBe('partial');
    expect(w.counts.ok).toBeGreaterThanOrEqual(1_000);
    expect(w.counts.cancelled).toBeGreaterThan(0);
    expect(w.counts.ok + w.counts.cancelled).toBe(6_000);
    // Lark holds exactly the records reported ok.
    const rows = await sql<{ n: number }>`select count(*)::int as n from base_records where tenant_key = ${TENANT} and fields->'Order'->0->>'text' like 'half-%'`.execute(stack.db.db);
    expect(rows.rows[0]?.n).toBe(w.counts.ok);
  });
});
