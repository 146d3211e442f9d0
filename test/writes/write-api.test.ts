import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { call } from '../helpers/sync-api.js';
import { waitFor } from '../helpers/wait.js';

const TENANT = 'tenant-writes-1';

interface WriteJson {
  id: string;
  status: string;
  counts: { total: number; ok: number; failed: number; pending: number; cancelled: number };
  warnings: string[];
  error: { class: string; message: string } | null;
  readBackPending: number;
  records?: Array<{ index: number; state: string; recordId: string | null; error: { code: string; message: string; field?: string } | null }>;
}

describe('writes into Base: durable, ordered, idempotent', () => {
  let stack: Stack;
  let appToken: string;
  let orders: string;

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false, bitableWrites: { latencyMs: 20 } } });
    await whenReady(stack);
    stack.data.bitable(TENANT, { projects: 30, ledger: 0, orders: 5 });
    await openTenant(stack, TENANT);
    ({ appToken, orders } = stack.data.bitable(TENANT).refs.main);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const table = () => stack.data.bitable(TENANT).table(appToken, orders);
  const post = (body: unknown, opts: { key?: string; wait?: number } = {}) =>
    fetch(`${stack.larksync.url}/api/v1/tenants/${TENANT}/writes${opts.wait !== undefined ? `?wait=${opts.wait}` : ''}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stack.env.API_TOKEN}`,
        'content-type': 'application/json',
        ...(opts.key ? { 'idempotency-key': opts.key } : {}),
      },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as WriteJson }));
  const finished = (id: string) =>
    waitFor(async () => {
      const w = await call<WriteJson>(stack, 'GET', `/api/v1/writes/${id}`);
      // Ended, and its rows read back into base_records (they follow the write within seconds).
      return ['queued', 'running'].includes(w.body.status) || w.body.readBackPending > 0 ? undefined : w.body;
    }, 20_000, `write ${id}`);

  it('creates records (202, stored first), converts obvious values, and the rows appear in base_records without a sync', async () => {
    const before = table().count;
    const buyer = `ou_${TENANT}-3`;
    const accepted = await post({
      table: { appToken, tableId: orders },
      op: 'create',
      records: [
        { fields: { Order: 'A-1', Qty: '3', Stage: 'Paid', Ordered: '2026-12-01', Buyer: buyer, Page: 'https://example.com/a1', Paid: true } },
        { fields: { Order: 'A-2', Qty: 5, Labels: ['rush', 'brand-new-label'], Ordered: '2026-12-01T09:30:00Z' } },
      ],
    });
    expect(accepted.status).toBe(202);
    expect(accepted.body.status).toBe('queued');
    const done = await finished(accepted.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.counts).toMatchObject({ total: 2, ok: 2, failed: 0 });
    expect(done.warnings.join(' ')).toMatch(/brand-new-label.*Lark creates it/);
    expect(table().count).toBe(before + 2);
    const ids = done.records!.map((r) => r.recordId!);
    const a1 = table().get(ids[0]!)!;
    expect(a1.fields.Qty).toBe(3);
    // A date without an offset is read in the Base's zone (UTC+8).
    expect(a1.fields.Ordered).toBe(Date.UTC(2026, 11, 1) - 8 * 3_600_000);
    expect(a1.fields.Page).toEqual({ text: 'https://example.com/a1', link: 'https://example.com/a1' });
    expect(table().get(ids[1]!)!.fields.Ordered).toBe(Date.UTC(2026, 11, 1, 9, 30));
    // Written rows are in the records feed without a sync.
    const rows = await sql<{ record_id: string }>`select record_id from base_records where tenant_key = ${TENANT} and record_id = any(${ids}::text[])`.execute(stack.db.db);
    expect(rows.rows.map((r) => r.record_id).sort()).toEqual([...ids].sort());
  });

  it('refuses unknown, read-only and wrongly shaped fields per record, naming the field, and writes the rest (partial)', async () => {
    const res = await post({
      table: { appToken, tableId: orders },
      op: 'create',
      records: [{ fields: { Order: 'ok-1' } }, { fields: { Order: 'x', Nope: 1 } }, { fields: { Order: 'y', Total: 3 } }, { fields: { Order: 'z', Qty: 'many' } }, { fields: { Order: 'w', Buyer: 'not-an-open-id' } }],
    }, { wait: 20 });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('partial');
    const w = await finished(res.body.id);
    expect(w.records!.map((r) => r.state)).toEqual(['ok', 'failed', 'failed', 'failed', 'failed']);
    expect(w.records![1]!.error).toMatchObject({ code: 'unknown_field', field: 'Nope' });
    expect(w.records![1]!.error!.message).toMatch(/no field "Nope".*its fields: Order/);
    expect(w.records![2]!.error).toMatchObject({ code: 'read_only_field', field: 'Total' });
    expect(w.records![3]!.error).toMatchObject({ code: 'invalid_value', field: 'Qty' });
    expect(w.records![3]!.error!.message).toMatch(/expects a number/);
    expect(w.records![4]!.error!.message).toMatch(/open_id/);
  });

  it('Idempotency-Key: the same key and body return the same write; another body is a 409', async () => {
    const body = { table: { appToken, tableId: orders }, op: 'create', records: [{ fields: { Order: 'idem-1' } }] };
    const first = await post(body, { key: 'key-1' });
    expect(first.status).toBe(202);
    const again = await post(body, { key: 'key-1' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const other = await post({ ...body, records: [{ fields: { Order: 'idem-2' } }] }, { key: 'key-1' });
    expect(other.status).toBe(409);
    expect((other.body as unknown as { error: { code: string } }).error.code).toBe('idempotency_key_reused');
    await finished(first.body.id);
    expect(Array.from({ length: table().count }, (_, i) => table().nth(i)).filter((r) => JSON.stringify(r?.fields.Order).includes('idem-1'))).toHaveLength(1);
  });

  it('Idempotency-Key over a large body: the hash is taken in slices, stays that of the whole canonical body, and ignores key order', async () => {
    // 1,200 records: the hash is fed 500 records at a time (writes.service.ts requestHash).
    const records = Array.from({ length: 1200 }, (_, i) => ({ fields: { Order: `idem-big-${i}`, Qty: i % 7 } }));
    const body = { table: { appToken, tableId: orders }, op: 'create', records };
    const first = await post(body, { key: 'key-big' });
    expect(first.status).toBe(202);
    // The same body with every object's keys in another order is the same request.
    const reordered = { records: records.map((r) => ({ fields: { Qty: r.fields.Qty, Order: r.fields.Order } })), op: 'create', table: { tableId: orders, appToken } };
    const again = await post(reordered, { key: 'key-big' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    // One record different, past the first slice: another request.
    const changed = { ...body, records: records.map((r, i) => (i === 1100 ? { fields: { ...r.fields, Qty: 99 } } : r)) };
    expect((await post(changed, { key: 'key-big' })).status).toBe(409);
    // Stored as sha256 of the whole canonical body (sorted keys), as before the hash was sliced,
    // so a replay of a write accepted by an older version still matches.
    const canonical = (v: unknown): string =>
      v === null || typeof v !== 'object'
        ? JSON.stringify(v)
        : Array.isArray(v)
          ? `[${v.map(canonical).join(',')}]`
          : `{${Object.keys(v as object)
              .sort()
              .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
              .join(',')}}`;
    const expected = createHash('sha256').update(canonical({ table: body.table, op: 'create', records, identity: null })).digest('hex');
    const stored = await sql<{ request_hash: string }>`select request_hash from base_writes where id = ${first.body.id}::bigint`.execute(stack.db.db);
    expect(stored.rows[0]!.request_hash).toBe(expected);
    await finished(first.body.id);
  });

  it('upserts by a key field: updates the match, creates the rest', async () => {
    const created = await post({ table: { appToken, tableId: orders }, op: 'create', records: [{ fields: { Order: 'U-1', Qty: 1 } }] }, { wait: 20 });
    const existingId = (await finished(created.body.id)).records![0]!.recordId!;
    const before = table().count;
    const up = await post({
      table: { appToken, tableId: orders },
      op: 'upsert',
      records: [
        { match: { Order: 'U-1' }, fields: { Qty: 7 } },
        { match: { Order: 'U-2' }, fields: { Qty: 2 } },
      ],
    }, { wait: 20 });
    const w = await finished(up.body.id);
    expect(w.status).toBe('succeeded');
    expect(w.records![0]!.recordId).toBe(existingId);
    expect(table().get(existingId)!.fields.Qty).toBe(7);
    expect(table().count).toBe(before + 1);
    const createdId = w.records![1]!.recordId!;
    expect(JSON.stringify(table().get(createdId)!.fields.Order)).toContain('U-2');
  });

  it('coalesces queued writes for one table into few calls, never two calls at once on the Base', async () => {
    const stats = stack.data.bitable(TENANT).writeStats(appToken);
    const callsBefore = stats.calls;
    // The Base is busy with a slow call while 10 small writes arrive behind it.
    stack.data.bitableWrites.latencyMs = 400;
    const ids: string[] = [];
    const first = await post({ table: { appToken, tableId: orders }, op: 'create', records: [{ fields: { Order: 'C-0' } }] });
    ids.push(first.body.id);
    await new Promise((r) => setTimeout(r, 150));
    for (let i = 1; i <= 10; i += 1) ids.push((await post({ table: { appToken, tableId: orders }, op: 'create', records: [{ fields: { Order: `C-${i}` } }] })).body.id);
    for (const id of ids) expect((await finished(id)).status).toBe('succeeded');
    stack.data.bitableWrites.latencyMs = 20;
    // The first call, then the ten queued behind it in one or two batch_create calls.
    expect(stats.calls - callsBefore).toBeLessThanOrEqual(3);
    expect(stats.overlaps).toBe(0);
  });

  it('a timed-out call is retried with the same client_token: written once', async () => {
    const tenant = stack.data.bitable(TENANT);
    const before = table().count;
    // Applied, then answered 504 after a while: the client cannot tell whether it went through.
    tenant.injectWriteFault({ code: 1255040, appToken, api: 'batch_create', count: 1, holdMs: 50 });
    const res = await post({ table: { appToken, tableId: orders }, op: 'create', records: [{ fields: { Order: 'T-1' } }, { fields: { Order: 'T-2' } }] }, { wait: 20 });
    expect((await finished(res.body.id)).status).toBe('succeeded');
    expect(table().count).toBe(before + 2);
    expect(tenant.writeStats(appToken).replays).toBeGreaterThanOrEqual(1);
  });

  it('a Base the app may not edit fails the write, saying to add the app as an editor or write as a user', async () => {
    table().writeDenied = true;
    try {
      const res = await post({ table: { appToken, tableId: orders }, op: 'create', records: [{ fields: { Order: 'D-1' } }] }, { wait: 20 });
      const w = await finished(res.body.id);
      expect(w.status).toBe('failed');
      expect(w.error?.class).toBe('permission_denied');
      expect(w.error?.message).toMatch(/Add document app.*edit.*identity/);
    } finally {
      table().writeDenied = false;
    }
  });

  it('updates and deletes by record id; cancelling stops what was not sent; bad requests are 400s naming what to fix', async () => {
    const created = await finished((await post({ table: { appToken, tableId: orders }, op: 'create', records: [{ fields: { Order: 'E-1' } }, { fields: { Order: 'E-2' } }] })).body.id);
    const [e1, e2] = created.records!.map((r) => r.recordId!);
    const upd = await finished((await post({ table: { appToken, tableId: orders }, op: 'update', records: [{ recordId: e1, fields: { Qty: 9 } }] })).body.id);
    expect(upd.status).toBe('succeeded');
    expect(table().get(e1!)!.fields.Qty).toBe(9);
    const del = await finished((await post({ table: { appToken, tableId: orders }, op: 'delete', records: [{ recordId: e2 }] })).body.id);
    expect(del.status).toBe('succeeded');
    expect(table().get(e2!)).toBeUndefined();
    const deleted = await sql<{ deleted_at: Date | null }>`select deleted_at from base_records where tenant_key = ${TENANT} and record_id = ${e2}`.execute(stack.db.db);
    expect(deleted.rows[0]?.deleted_at ?? null).not.toBeNull();

    const bad = await post({ table: { appToken, tableId: orders }, op: 'update', records: [{ fields: { Qty: 1 } }] });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/body\.records\.0: update takes \{ recordId, fields \}/);
    const tooMany = await post({ table: { appToken, tableId: orders }, op: 'create', records: Array.from({ length: 10_001 }, () => ({ fields: {} })) });
    expect(tooMany.status).toBe(400);

    const list = await call<{ writes: WriteJson[] }>(stack, 'GET', `/api/v1/tenants/${TENANT}/writes?status=succeeded&limit=3`);
    expect(list.status).toBe(200);
    expect(list.body.writes.length).toBe(3);
    expect(list.body.writes.every((w) => w.status === 'succeeded')).toBe(true);
  });
});
