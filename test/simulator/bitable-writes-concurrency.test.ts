import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BitableTenant } from '../../simulator/data/bitable/index.js';
import { startDataClient, type DataClient, type LarkBody } from './data-client.js';

// One write call at a time per Base (corrections.md), client_token idempotency (bitable-writes.md
// §6.2: UUIDv4, 1254037, 1255006, 1254608), 1255040 timeouts after the write, 1254607 for heavy
// batches, 1254290 and the 50/s write limit — over raw HTTP with a tenant token.

const TENANT = 'tk-sim-writes-conc';
const TENANT_RATE = 'tk-sim-writes-rate';

interface Written {
  record_id: string;
  fields: Record<string, unknown>;
}
type Body<D> = LarkBody & { data?: D };
type Records = Body<{ records: Written[] }>;

describe('simulator Base writes: one writer per Base, client_token, timeouts, data not ready, throttling', () => {
  let client: DataClient;
  let token: string;
  let bitable: BitableTenant;
  let appToken: string;
  let ordersId: string;
  let projectsId: string;

  const path = (tail: string, table = ordersId, app = appToken) => `/open-apis/bitable/v1/apps/${app}/tables/${table}${tail}`;
  const batchCreate = (records: Array<Record<string, unknown>>, query = '', opts: { table?: string; t?: string; app?: string } = {}) =>
    client.call<Records>(opts.t ?? token, 'POST', path(`/records/batch_create${query}`, opts.table, opts.app), { records: records.map((fields) => ({ fields })) });
  const count = () => bitable.table(appToken, ordersId).count;
  const stats = () => bitable.writeStats(appToken);

  beforeAll(async () => {
    client = await startDataClient([TENANT, TENANT_RATE], { enforceRateLimits: false });
    bitable = client.data.bitable(TENANT, { projects: 20, ledger: 10, tasks: 5, events: 10, orders: 5 });
    ({ appToken, orders: ordersId, projects: projectsId } = bitable.refs.main);
    token = await client.tenantToken(TENANT);
  });
  beforeEach(() => {
    Object.assign(client.data.bitableWrites, { latencyMs: 150, maxBatchCells: 20_000 });
    bitable.writes.clearFaults();
    bitable.writes.resetStats();
  });
  afterAll(async () => {
    await client.stop();
  });

  it('a write arriving while another is in progress on the same Base answers 1254291 (even on another table); one after another both pass', async () => {
    const before = count();
    const [a, b] = await Promise.all([batchCreate([{ Order: 'first' }]), batchCreate([{ Title: 'second' }], '', { table: projectsId })]);
    const codes = [a.body.code, b.body.code].sort();
    expect(codes).toEqual([0, 1254291]);
    const conflict = a.body.code === 0 ? b : a;
    expect(conflict.status).toBe(200);
    expect(conflict.body.msg).toBe('Write conflict');
    expect(stats()).toMatchObject({ calls: 2, overlaps: 1, conflicts: 1, applied: 1, maxInFlight: 1, inFlight: 0 });

    // Serialised: no overlap, both applied; the call holds the Base for its latency.
    bitable.writes.resetStats();
    const started = Date.now();
    expect((await batchCreate([{ Order: 'one' }])).body.code).toBe(0);
    expect((await batchCreate([{ Order: 'two' }, { Order: 'three' }])).body.code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(stats()).toMatchObject({ calls: 2, overlaps: 0, conflicts: 0, applied: 2, recordsWritten: 3, recordsCreated: 3, batchSizes: [1, 2] });
    expect(count()).toBe(before + (a.body.code === 0 ? 1 : 0) + 3);

    // Another Base is another lock: writes to two Bases at once both pass.
    const wiki = bitable.refs.wiki;
    const [x, y] = await Promise.all([batchCreate([{ Order: 'main' }]), batchCreate([{ Task: 'wiki' }], '', { app: wiki.appToken, table: wiki.tasks })]);
    expect([x.body.code, y.body.code]).toEqual([0, 0]);
    expect(stats().overlaps).toBe(0);
    expect(client.data.bitableWriteTotals()).toMatchObject({ overlaps: 0, applied: 4 });
  });

  it('ignore_consistency_check=true lets a concurrent write through (the documented mitigation), still counted as an overlap', async () => {
    const [a, b] = await Promise.all([
      batchCreate([{ Order: 'icc 1' }], '?ignore_consistency_check=true'),
      batchCreate([{ Order: 'icc 2' }], '?ignore_consistency_check=true'),
    ]);
    expect([a.body.code, b.body.code]).toEqual([0, 0]);
    expect(stats()).toMatchObject({ overlaps: 1, conflicts: 0, applied: 2, maxInFlight: 2 });
  });

  it('client_token: a replay answers the first result without writing again; another body 1255006; not a UUIDv4 1254037', async () => {
    const ct = randomUUID();
    const before = count();
    const first = await batchCreate([{ Order: 'idem 1' }, { Order: 'idem 2' }], `?client_token=${ct}`);
    expect(first.body.code).toBe(0);
    const again = await batchCreate([{ Order: 'idem 1' }, { Order: 'idem 2' }], `?client_token=${ct}`);
    expect(again.body).toEqual(first.body);
    expect(count()).toBe(before + 2);
    expect(stats()).toMatchObject({ applied: 1, replays: 1, recordsCreated: 2 });

    const other = await batchCreate([{ Order: 'something else' }], `?client_token=${ct}`);
    expect({ status: other.status, code: other.body.code }).toEqual({ status: 400, code: 1255006 });
    // The same token on another endpoint is another request too.
    const single = await client.call(token, 'POST', path(`/records?client_token=${ct}`), { fields: { Order: 'idem 1' } });
    expect(single.body.code).toBe(1255006);

    for (const bad of ['not-a-uuid', '123e4567-e89b-12d3-a456-426614174000' /* v1 */]) {
      const res = await batchCreate([{ Order: 'x' }], `?client_token=${bad}`);
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: 1254037 });
    }
    // Empty = a new request each time.
    expect((await batchCreate([{ Order: 'e' }], '?client_token=')).body.code).toBe(0);
    expect((await batchCreate([{ Order: 'e' }], '?client_token=')).body.code).toBe(0);
    expect(count()).toBe(before + 4);

    // Single create and batch_update honour it too.
    const ct2 = randomUUID();
    const id = first.body.data!.records[0]!.record_id;
    const upd = () => client.call<Records>(token, 'POST', path(`/records/batch_update?client_token=${ct2}`), { records: [{ record_id: id, fields: { Qty: 7 } }] });
    const u1 = await upd();
    const modified = bitable.table(appToken, ordersId).get(id)!.last_modified_time;
    const u2 = await upd();
    expect(u2.body).toEqual(u1.body);
    expect(bitable.table(appToken, ordersId).get(id)!.last_modified_time).toBe(modified);
  });

  it('the same client_token twice at once answers 1254608 for the second; a failed call does not use up its token', async () => {
    const ct = randomUUID();
    const before = count();
    const [a, b] = await Promise.all([batchCreate([{ Order: 'dup' }], `?client_token=${ct}`), batchCreate([{ Order: 'dup' }], `?client_token=${ct}`)]);
    const codes = [a.body.code, b.body.code].sort();
    expect(codes).toEqual([0, 1254608]);
    expect((a.body.code === 0 ? b : a).status).toBe(403);
    expect(stats()).toMatchObject({ overlaps: 1, duplicateSubmits: 1 });
    expect(count()).toBe(before + 1);

    // Conflict (1254291) with a token, then a retry with the same token: applied once.
    const ct2 = randomUUID();
    const [x, y] = await Promise.all([batchCreate([{ Order: 'blocker' }]), batchCreate([{ Order: 'retry me' }], `?client_token=${ct2}`)]);
    expect([x.body.code, y.body.code]).toEqual([0, 1254291]);
    const retry = await batchCreate([{ Order: 'retry me' }], `?client_token=${ct2}`);
    expect(retry.body.code).toBe(0);
    expect(stats().replays).toBe(0);
    expect(count()).toBe(before + 3);
  });

  it('1255040 timeout after the write: the retry with the same client_token returns the first result and writes nothing twice', async () => {
    const ct = randomUUID();
    const before = count();
    bitable.injectWriteFault({ code: 1255040, appToken, api: 'batch_create' });
    const timedOut = await batchCreate([{ Order: 'late 1' }, { Order: 'late 2' }], `?client_token=${ct}`);
    expect({ status: timedOut.status, code: timedOut.body.code }).toEqual({ status: 504, code: 1255040 });
    // Applied although the answer failed: readers see the records.
    expect(count()).toBe(before + 2);
    const search = await client.call<Body<{ items: Written[] }>>(token, 'POST', path('/records/search?page_size=500'), {});
    const late = search.body.data!.items.filter((r) => JSON.stringify(r.fields.Order).includes('late '));
    expect(late).toHaveLength(2);

    const retry = await batchCreate([{ Order: 'late 1' }, { Order: 'late 2' }], `?client_token=${ct}`);
    expect(retry.body.code).toBe(0);
    expect(retry.body.data!.records.map((r) => r.record_id)).toEqual(late.map((r) => r.record_id));
    expect(count()).toBe(before + 2);
    expect(stats()).toMatchObject({ timeouts: 1, replays: 1, applied: 1, recordsCreated: 2 });

    // Without a token the same retry writes the records twice: why the token matters.
    bitable.injectWriteFault({ code: 1255040, holdMs: 50 });
    expect((await batchCreate([{ Order: 'no token' }])).status).toBe(504);
    expect((await batchCreate([{ Order: 'no token' }])).body.code).toBe(0);
    expect(count()).toBe(before + 4);
  });

  it('1254607 data not ready for a batch over the weight threshold; nothing written, smaller batches pass', async () => {
    client.data.bitableWrites.maxBatchCells = 10;
    const before = count();
    const rows = Array.from({ length: 4 }, (_, i) => ({ Order: `heavy ${i}`, Qty: i, Price: 1 }));
    const heavy = await batchCreate(rows);
    expect({ status: heavy.status, code: heavy.body.code }).toEqual({ status: 400, code: 1254607 });
    expect(count()).toBe(before);
    expect((await batchCreate(rows.slice(0, 2))).body.code).toBe(0);
    expect((await batchCreate(rows.slice(2))).body.code).toBe(0);
    expect(count()).toBe(before + 4);
    expect(stats()).toMatchObject({ notReady: 1, batchSizes: [4, 2, 2] });

    // By bytes as well.
    Object.assign(client.data.bitableWrites, { maxBatchCells: 20_000, maxBatchBytes: 200 });
    expect((await batchCreate([{ Order: 'y'.repeat(300) }])).body.code).toBe(1254607);
    client.data.bitableWrites.maxBatchBytes = 4 * 1024 * 1024;
    // Injected, e.g. "an earlier operation still processing".
    bitable.injectWriteFault({ code: 1254607 });
    const injected = await batchCreate([{ Order: 'small' }]);
    expect({ status: injected.status, code: injected.body.code }).toEqual({ status: 400, code: 1254607 });
    expect(count()).toBe(before + 4);
  });

  it('1254290 when Base throttles; 99991400 (HTTP 429) past 50 write calls per second per app and tenant', async () => {
    bitable.injectThrottle(1);
    const throttled = await batchCreate([{ Order: 'throttled' }]);
    expect({ status: throttled.status, code: throttled.body.code }).toEqual({ status: 200, code: 1254290 });

    const rate = client.data.bitable(TENANT_RATE, { projects: 5, ledger: 0, tasks: 0, events: 0, orders: 0 });
    const rateToken = await client.tenantToken(TENANT_RATE);
    const { appToken: rateApp, orders: rateOrders } = rate.refs.main;
    client.data.bitableWrites.latencyMs = 0;
    client.data.enforceRateLimits = true;
    try {
      const codes: number[] = [];
      let limited: { status: number; body: LarkBody } | undefined;
      for (let i = 0; i < 51; i += 1) {
        const res = await batchCreate([{ Order: `r${i}` }], '', { t: rateToken, app: rateApp, table: rateOrders });
        codes.push(res.body.code);
        if (res.body.code !== 0) limited = res;
      }
      expect(codes.filter((c) => c === 0)).toHaveLength(50);
      expect(limited).toMatchObject({ status: 429, body: { code: 99991400 } });
      // The limit is per API: batch_delete still has its own 50.
      const del = await client.call(rateToken, 'POST', path('/records/batch_delete', rateOrders, rateApp), { records: [rate.table(rateApp, rateOrders).recordId(0)] });
      expect(del.body.code).toBe(0);
    } finally {
      client.data.enforceRateLimits = false;
    }
  });
});
