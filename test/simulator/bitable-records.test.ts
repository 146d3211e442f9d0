import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BitableTenant } from '../../simulator/data/bitable/index.js';
import { startDataClient, type DataClient, type LarkBody } from './data-client.js';

// Base record reads over raw HTTP against the simulator, checked against shared/lark/bitable.md:
// batch_get (§2.6), advanced permissions (§4), tables the app may not read or that were deleted,
// and attachment URLs signed per read (§3).

const TENANT = 'tk-sim-bitable';
/** A second tenant, only for the rate-limit test (the limiter counts per app, tenant and API). */
const TENANT_RATE = 'tk-sim-bitable-rate';
// The other tests call faster than Lark allows; only the rate-limit test switches the limits on.

interface BatchGetData {
  records: Array<Record<string, unknown> & { record_id: string; fields: Record<string, unknown> }>;
  absent_record_ids: string[];
  forbidden_record_ids: string[];
}
interface SearchData {
  items: Array<{ record_id: string; fields: Record<string, unknown> }>;
  has_more: boolean;
  page_token?: string;
  total: number;
}
interface Attachment {
  file_token: string;
  name: string;
  type: string;
  size: number;
  url: string;
  tmp_url: string;
}

describe('simulator Base records: batch_get, permissions, vanished tables, attachment URLs', () => {
  let client: DataClient;
  let token: string;
  let bitable: BitableTenant;
  const path = (appToken: string, tableId: string, tail: string) => `/open-apis/bitable/v1/apps/${appToken}/tables/${tableId}${tail}`;

  beforeAll(async () => {
    client = await startDataClient([TENANT, TENANT_RATE], { enforceRateLimits: false });
    bitable = client.data.bitable(TENANT, { projects: 300, ledger: 200, tasks: 30, events: 50 });
    token = await client.tenantToken(TENANT);
  });
  afterAll(async () => {
    await client.stop();
  });

  const projects = () => bitable.table(bitable.refs.main.appToken, bitable.refs.main.projects);
  const batchGet = (body: unknown, appToken = bitable.refs.main.appToken, tableId = bitable.refs.main.projects, t = token) =>
    client.call<LarkBody & { data?: BatchGetData }>(t, 'POST', path(appToken, tableId, '/records/batch_get'), body);
  const search = (appToken: string, tableId: string, body: unknown = {}, query = '') =>
    client.call<LarkBody & { data?: SearchData }>(token, 'POST', path(appToken, tableId, `/records/search${query}`), body);

  it('batch_get answers existing records, deleted or unknown ids as absent, and forbidden ids apart', async () => {
    const table = projects();
    const [live1, live2, deleted, forbidden] = [0, 1, 2, 3].map((i) => table.recordId(i)) as [string, string, string, string];
    table.delete(deleted);
    table.forbiddenRecords = new Set([forbidden]);
    const foreign = bitable.table(bitable.refs.main.appToken, bitable.refs.main.ledger).recordId(0);
    const ids = [live2, deleted, forbidden, 'recNoSuchRecord', live1, foreign];

    const res = await batchGet({ record_ids: ids });
    expect(res.status).toBe(200);
    expect(res.body.code).toBe(0);
    const data = res.body.data!;
    expect(data.records.map((r) => r.record_id)).toEqual([live2, live1]);
    expect(data.records[0]).toEqual({ record_id: live2, fields: table.get(live2)!.fields });
    expect(data.absent_record_ids).toEqual([deleted, 'recNoSuchRecord', foreign]);
    expect(data.forbidden_record_ids).toEqual([forbidden]);

    const withAuto = (await batchGet({ record_ids: [live1], automatic_fields: true, user_id_type: 'open_id', with_shared_url: false })).body.data!;
    const stored = table.get(live1)!;
    expect(withAuto.records[0]).toEqual({
      record_id: live1,
      fields: stored.fields,
      created_by: stored.created_by,
      created_time: stored.created_time,
      last_modified_by: stored.last_modified_by,
      last_modified_time: stored.last_modified_time,
    });
    const shared = (await batchGet({ record_ids: [live1], with_shared_url: true })).body.data!;
    expect(typeof shared.records[0]?.shared_url).toBe('string');

    const logged = bitable.batchGets(bitable.refs.main.appToken, bitable.refs.main.projects);
    expect(logged.length).toBe(3);
    expect(logged[0]).toMatchObject({ api: 'batch_get', body: { record_ids: ids } });
    table.forbiddenRecords = new Set();
  });

  it('records/search leaves forbidden records out entirely: items and total, filtered or not, and notices changes', async () => {
    const table = projects();
    const { appToken, projects: tableId } = bitable.refs.main;
    const all = await search(appToken, tableId, {}, '?page_size=500');
    const hidden = [table.recordId(10), table.recordId(11)];
    table.forbiddenRecords.add(hidden[0]!);
    table.forbiddenRecords.add(hidden[1]!);
    const without = (await search(appToken, tableId, {}, '?page_size=500')).body.data!;
    expect(without.total).toBe(all.body.data!.total - 2);
    expect(without.items.map((r) => r.record_id)).toEqual(all.body.data!.items.map((r) => r.record_id).filter((id) => !hidden.includes(id)));
    const sorted = (await search(appToken, tableId, { sort: [{ field_name: 'Budget' }] }, '?page_size=500')).body.data!;
    expect(sorted.items.some((r) => hidden.includes(r.record_id))).toBe(false);
    expect(sorted.total).toBe(without.total);
    // Lifting the restriction shows them again (no stale cached listing).
    table.forbiddenRecords.delete(hidden[0]!);
    const one = (await search(appToken, tableId, { sort: [{ field_name: 'Budget' }] }, '?page_size=500')).body.data!;
    expect(one.total).toBe(without.total + 1);
    expect(one.items.some((r) => r.record_id === hidden[0])).toBe(true);
    table.forbiddenRecords.clear();
  });

  it('batch_get with advanced permissions and no manage right succeeds with empty data', async () => {
    const table = projects();
    table.silentBatchGet = true;
    try {
      const res = await batchGet({ record_ids: [table.recordId(0), 'recNoSuchRecord'] });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ code: 0, data: { records: [], absent_record_ids: [], forbidden_record_ids: [] } });
      // A bad body is still a bad body.
      expect((await batchGet({ record_ids: [] })).body.code).toBe(1254001);
    } finally {
      table.silentBatchGet = false;
    }
  });

  it('batch_get takes 1 to 100 string ids; other bodies answer 1254001 (HTTP 200); unknown base or table 1254040 / 1254041', async () => {
    const table = projects();
    const hundred = Array.from({ length: 100 }, (_, i) => table.recordId(i + 100));
    const ok = await batchGet({ record_ids: hundred });
    expect(ok.body.code).toBe(0);
    expect(ok.body.data!.records.length + ok.body.data!.absent_record_ids.length).toBe(100);

    const bad: unknown[] = [
      { record_ids: [...hundred, table.recordId(250)] },
      { record_ids: [] },
      { record_ids: table.recordId(0) },
      { record_ids: [1, 2] },
      { record_ids: [table.recordId(0), null] },
      {},
      [table.recordId(0)],
      { record_ids: [table.recordId(0)], automatic_fields: 'yes' },
      { record_ids: [table.recordId(0)], user_id_type: 'email' },
    ];
    for (const body of bad) {
      const res = await batchGet(body);
      expect({ body, status: res.status, code: res.body.code }).toEqual({ body, status: 200, code: 1254001 });
    }
    const noBody = await client.call(token, 'POST', path(bitable.refs.main.appToken, bitable.refs.main.projects, '/records/batch_get'));
    expect(noBody.body.code).toBe(1254001);

    expect((await batchGet({ record_ids: ['recX'] }, 'bascnNoSuchBase', bitable.refs.main.projects)).body.code).toBe(1254040);
    expect((await batchGet({ record_ids: ['recX'] }, bitable.refs.main.appToken, 'tblNoSuchTable')).body.code).toBe(1254041);
  });

  it('batch_get is limited to 20 calls a second per app and tenant (HTTP 429, 99991400)', async () => {
    const other = await client.tenantToken(TENANT_RATE);
    const data = client.data.bitable(TENANT_RATE, { projects: 5, ledger: 0, tasks: 0, events: 0 });
    client.data.enforceRateLimits = true;
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => batchGet({ record_ids: ['recX'] }, data.refs.main.appToken, data.refs.main.projects, other)),
    ).finally(() => {
      client.data.enforceRateLimits = false;
    });
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.body.code).toBe(99991400);
    expect(answers.filter((a) => a.status === 200).every((a) => a.body.code === 0)).toBe(true);
  });

  it('a table the app may not read answers HTTP 403, code 91403, on fields, search and batch_get, also from one page to the next', async () => {
    const { appToken, tasks: tableId } = bitable.refs.wiki;
    const table = bitable.table(appToken, tableId);
    const firstPage = await search(appToken, tableId, {}, '?page_size=10');
    expect(firstPage.body.code).toBe(0);

    client.data.onPage = (api) => {
      if (api === 'bitable.records.search') table.denied = true;
    };
    try {
      const next = await search(appToken, tableId, {}, `?page_size=10&page_token=${firstPage.body.data!.page_token}`);
      expect(next).toEqual({ status: 403, body: { code: 91403, msg: 'Forbidden' } });
    } finally {
      client.data.onPage = undefined;
    }
    const fields = await client.call(token, 'GET', path(appToken, tableId, '/fields'));
    expect(fields).toEqual({ status: 403, body: { code: 91403, msg: 'Forbidden' } });
    const got = await batchGet({ record_ids: [table.recordId(0)] }, appToken, tableId);
    expect(got).toEqual({ status: 403, body: { code: 91403, msg: 'Forbidden' } });

    table.denied = false;
    expect((await search(appToken, tableId)).body.code).toBe(0);
  });

  it('a dropped table answers 1254041 TableIdNotFound, also from one page to the next', async () => {
    const { appToken, events: tableId } = bitable.refs.big;
    const firstPage = await search(appToken, tableId, {}, '?page_size=20');
    expect(firstPage.body.data!.has_more).toBe(true);
    client.data.onPage = (api, who) => {
      if (api === 'bitable.records.search' && who.tenantKey === TENANT) bitable.dropTable(appToken, tableId);
    };
    try {
      const next = await search(appToken, tableId, {}, `?page_size=20&page_token=${firstPage.body.data!.page_token}`);
      expect(next).toEqual({ status: 200, body: { code: 1254041, msg: 'TableIdNotFound' } });
    } finally {
      client.data.onPage = undefined;
    }
    expect((await client.call(token, 'GET', path(appToken, tableId, '/fields'))).body.code).toBe(1254041);
    expect((await batchGet({ record_ids: ['recX'] }, appToken, tableId)).body.code).toBe(1254041);
    expect(() => bitable.table(appToken, tableId)).toThrow();
  });

  it('attachment url and tmp_url differ on every read while file_token, name, type and size stay; the stored cell is unchanged', async () => {
    const { appToken, ledger: tableId } = bitable.refs.main;
    const ledger = bitable.table(appToken, tableId);
    const withFile = Array.from({ length: ledger.count }, (_, i) => ledger.nth(i)!).filter((r) => r.fields.Receipt !== undefined);
    expect(withFile.length).toBeGreaterThan(10);
    const id = withFile[0]!.record_id;
    const stored = structuredClone(ledger.get(id)!.fields.Receipt) as Attachment[];

    const receiptOf = (items: Array<{ record_id: string; fields: Record<string, unknown> }>) => items.find((r) => r.record_id === id)!.fields.Receipt as Attachment[];
    const reads = [
      receiptOf((await search(appToken, tableId, {}, '?page_size=500')).body.data!.items),
      receiptOf((await search(appToken, tableId, { field_names: ['Name', 'Receipt'] }, '?page_size=500')).body.data!.items),
      receiptOf((await batchGet({ record_ids: [id] }, appToken, tableId)).body.data!.records),
      receiptOf((await batchGet({ record_ids: [id] }, appToken, tableId)).body.data!.records),
    ];
    const unsigned = (url: string) => url.replace(/[?&]sig=\d+$/, '');
    for (const [i, read] of reads.entries()) {
      expect(read.length).toBe(stored.length);
      for (const [k, file] of read.entries()) {
        const want = stored[k]!;
        expect({ file_token: file.file_token, name: file.name, type: file.type, size: file.size }).toEqual({
          file_token: want.file_token,
          name: want.name,
          type: want.type,
          size: want.size,
        });
        expect(unsigned(file.url)).toBe(want.url);
        expect(unsigned(file.tmp_url)).toBe(want.tmp_url);
        expect(file.url === want.url).toBe(false);
        for (const earlier of reads.slice(0, i)) {
          expect(file.url === earlier[k]!.url).toBe(false);
          expect(file.tmp_url === earlier[k]!.tmp_url).toBe(false);
        }
      }
    }
    expect(ledger.get(id)!.fields.Receipt).toEqual(stored);
    // Records without attachments come back as stored.
    const plain = Array.from({ length: 5 }, (_, i) => ledger.nth(i)!).find((r) => r.fields.Receipt === undefined)!;
    const got = (await batchGet({ record_ids: [plain.record_id] }, appToken, tableId)).body.data!.records[0]!;
    expect(got.fields).toEqual(plain.fields);
  });
});
