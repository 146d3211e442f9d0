import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FieldType, UPLOAD_ALL_PATH, type BitableTenant, type SimTable } from '../../simulator/data/bitable/index.js';
import { exchange, redirectParams, REDIRECT } from './oauth-client.js';
import { DATA_APP, startDataClient, type DataClient, type HttpMethod, type LarkBody } from './data-client.js';

// Base record writes over raw HTTP with a tenant token, checked against shared/lark/bitable-writes.md
// §6, bitable.md §2.7, §3 and §5: each endpoint and its answer, all-or-nothing batches, the value
// shapes and their error codes per field type, read-only fields, select options created on write,
// and media upload for attachment cells. Concurrency, client_token and faults: bitable-writes-concurrency.test.ts.

const TENANT = 'tk-sim-writes';

interface Written {
  record_id: string;
  fields: Record<string, unknown>;
}
type Body<D> = LarkBody & { data?: D };

describe('simulator Base writes: endpoints, answers, all-or-nothing, value shapes, media', () => {
  let client: DataClient;
  let token: string;
  let bitable: BitableTenant;
  let appToken: string;
  let ordersId: string;
  let projectsId: string;
  const path = (tail: string, table = ordersId, app = appToken) => `/open-apis/bitable/v1/apps/${app}/tables/${table}${tail}`;
  const write = <D = Record<string, unknown>>(method: HttpMethod, tail: string, body?: unknown, t = token, table = ordersId, app = appToken) =>
    client.call<Body<D>>(t, method, path(tail, table, app), body);
  const batchCreate = (records: Array<Record<string, unknown>>, query = '') =>
    write<{ records: Written[] }>('POST', `/records/batch_create${query}`, { records: records.map((fields) => ({ fields })) });
  const batchGet = async (ids: string[], table = ordersId) =>
    (await write<{ records: Array<Written & Record<string, unknown>>; absent_record_ids: string[] }>('POST', '/records/batch_get', { record_ids: ids, automatic_fields: true }, token, table))
      .body.data!;
  const orders = (): SimTable => bitable.table(appToken, ordersId);
  const optionsOf = (table: SimTable, name: string) =>
    ((table.fields.find((f) => f.field_name === name)?.property?.options ?? []) as Array<{ name: string }>).map((o) => o.name);

  beforeAll(async () => {
    client = await startDataClient([TENANT], { enforceRateLimits: false, bitableWrites: { latencyMs: 2 } });
    bitable = client.data.bitable(TENANT, { projects: 40, ledger: 10, tasks: 5, events: 10, orders: 12 });
    ({ appToken, orders: ordersId, projects: projectsId } = bitable.refs.main);
    token = await client.tenantToken(TENANT);
  });
  afterAll(async () => {
    await client.stop();
  });

  it('batch_create answers {records: [{record_id, fields}]} with the fields as written; reads show them at once, made by the app', async () => {
    const buyer = client.sim.oauth.users.list(TENANT)[0]!;
    const project = bitable.table(appToken, projectsId).recordId(3);
    const fields = {
      Order: 'Order from the API',
      Qty: 3,
      Price: 12.5,
      Stage: 'Paid',
      Labels: ['gift'],
      Ordered: 1_719_792_000_000,
      Paid: true,
      Buyer: [{ id: buyer.openId }],
      Contact: '+8613800000000',
      Email: 'ana@example.com',
      Page: { text: 'Spec', link: 'https://example.com/spec' },
      Project: [project],
    };
    const before = orders().count;
    const started = client.sim.now();
    const res = await batchCreate([fields, { Order: 'Second' }]);
    expect(res.status).toBe(200);
    expect(res.body.code).toBe(0);
    const written = res.body.data!.records;
    expect(written).toHaveLength(2);
    expect(written[0]).toEqual({ record_id: expect.stringMatching(/^rec/), fields });
    expect(written[1]).toEqual({ record_id: expect.stringMatching(/^rec/), fields: { Order: 'Second' } });
    expect(orders().count).toBe(before + 2);

    const got = await batchGet(written.map((r) => r.record_id));
    expect(got.absent_record_ids).toEqual([]);
    const [first, second] = got.records;
    const app = { id: DATA_APP.appId, name: DATA_APP.appId, en_name: DATA_APP.appId, email: '' };
    expect(first).toMatchObject({ record_id: written[0]!.record_id, created_by: app, last_modified_by: app });
    expect(first!.created_time).toBeGreaterThanOrEqual(started);
    expect(first!.last_modified_time).toBe(first!.created_time);
    const projectTitle = bitable.table(appToken, projectsId).get(project)!.fields.Title;
    // Read shapes (bitable.md §3): text as segments, people expanded, links as link_record_ids,
    // formula/lookup results as {type, value[]}, automatic cells filled in.
    expect(first!.fields).toEqual({
      Order: [{ type: 'text', text: 'Order from the API' }],
      Qty: 3,
      Price: 12.5,
      Stage: 'Paid',
      Labels: ['gift'],
      Ordered: 1_719_792_000_000,
      Paid: true,
      Buyer: [{ id: buyer.openId, name: buyer.name, en_name: buyer.enName, email: buyer.email }],
      Contact: '+8613800000000',
      Email: [{ type: 'url', text: 'ana@example.com', link: 'mailto:ana@example.com' }],
      Page: { text: 'Spec', link: 'https://example.com/spec' },
      Project: { link_record_ids: [project] },
      Total: { type: 2, value: [37.5] },
      'Project title': { type: 1, value: projectTitle },
      No: String(before + 1),
      Created: first!.created_time,
      Modified: first!.created_time,
      Creator: [app],
      Editor: [app],
    });
    expect(second!.fields.No).toBe(String(before + 2));

    // records/search sees them too (the same table).
    const search = await write<{ items: Written[]; total: number }>('POST', '/records/search?page_size=500', {});
    expect(search.body.data!.total).toBe(before + 2);
    expect(search.body.data!.items.slice(-2).map((r) => r.record_id)).toEqual(written.map((r) => r.record_id));
  });

  it('single create, PUT update and DELETE answer record / deleted; an update changes only the fields given, null clears', async () => {
    const created = await write<{ record: Written }>('POST', '/records', { fields: { Order: 'Single', Qty: 2, Price: 5, Paid: true } });
    expect(created.body.code).toBe(0);
    const id = created.body.data!.record.record_id;
    expect(created.body.data).toEqual({ record: { record_id: id, fields: { Order: 'Single', Qty: 2, Price: 5, Paid: true } } });
    const createdAt = orders().get(id)!.last_modified_time;

    const updated = await write<{ record: Written }>('PUT', `/records/${id}`, { fields: { Qty: 4, Paid: null, Stage: 'Shipped' } });
    expect(updated.body).toEqual({ code: 0, msg: 'success', data: { record: { record_id: id, fields: { Qty: 4, Paid: null, Stage: 'Shipped' } } } });
    const after = orders().get(id)!;
    expect(after.fields.Order).toEqual([{ type: 'text', text: 'Single' }]);
    expect(after.fields.Qty).toBe(4);
    expect(after.fields.Paid).toBeUndefined();
    expect(after.fields.Stage).toBe('Shipped');
    expect(after.fields.Total).toEqual({ type: 2, value: [20] });
    expect(after.last_modified_time).toBeGreaterThan(createdAt);
    expect(after.fields.Modified).toBe(after.last_modified_time);

    // Unchecking a checkbox with false clears it too (reads omit unchecked boxes, bitable.md §1).
    await write('PUT', `/records/${id}`, { fields: { Paid: true } });
    await write('PUT', `/records/${id}`, { fields: { Paid: false } });
    expect(orders().get(id)!.fields.Paid).toBeUndefined();

    const deleted = await write('DELETE', `/records/${id}`);
    expect(deleted.body).toEqual({ code: 0, msg: 'success', data: { deleted: true, record_id: id } });
    expect((await batchGet([id])).absent_record_ids).toEqual([id]);
    expect((await write('DELETE', `/records/${id}`)).body.code).toBe(1254043);
    expect((await write('PUT', `/records/${id}`, { fields: { Qty: 1 } })).body.code).toBe(1254043);
  });

  it('batch_update and batch_delete answer the records written; one unknown id fails the whole batch and changes nothing', async () => {
    const ids = (await batchCreate([{ Order: 'u1' }, { Order: 'u2' }, { Order: 'u3' }])).body.data!.records.map((r) => r.record_id);
    const upd = await write<{ records: Written[] }>('POST', '/records/batch_update', {
      records: [
        { record_id: ids[0], fields: { Qty: 1 } },
        { record_id: ids[1], fields: { Qty: 2, Labels: ['urgent'] } },
      ],
    });
    expect(upd.body.code).toBe(0);
    expect(upd.body.data).toEqual({
      records: [
        { record_id: ids[0], fields: { Qty: 1 } },
        { record_id: ids[1], fields: { Qty: 2, Labels: ['urgent'] } },
      ],
    });

    const snapshot = ids.map((id) => structuredClone(orders().get(id)));
    const bad = await write('POST', '/records/batch_update', {
      records: [
        { record_id: ids[0], fields: { Qty: 100 } },
        { record_id: 'recNoSuchOne', fields: { Qty: 100 } },
      ],
    });
    expect(bad.body.code).toBe(1254043);
    expect(ids.map((id) => orders().get(id))).toEqual(snapshot);

    const badDelete = await write('POST', '/records/batch_delete', { records: [ids[2], 'recNoSuchOne'] });
    expect(badDelete.body.code).toBe(1254043);
    expect(orders().get(ids[2]!)).toBeDefined();

    const del = await write('POST', '/records/batch_delete', { records: [ids[1], ids[2]] });
    expect(del.body).toEqual({ code: 0, msg: 'success', data: { records: [{ deleted: true, record_id: ids[1] }, { deleted: true, record_id: ids[2] }] } });
    expect((await batchGet(ids)).absent_record_ids).toEqual([ids[1], ids[2]]);
  });

  it('a batch with one bad value writes nothing, new select options included', async () => {
    const before = orders().count;
    const stageOptions = optionsOf(orders(), 'Stage');
    const res = await batchCreate([{ Order: 'ok', Stage: 'Brand new stage' }, { Order: 'bad', Qty: 'three' }]);
    expect(res.body.code).toBe(1254061);
    expect(res.body.msg).toContain('records[1]');
    expect(orders().count).toBe(before);
    expect(optionsOf(orders(), 'Stage')).toEqual(stageOptions);
  });

  it('limits: 1,000 records per create/update, 500 ids per delete (1254104); empty or malformed bodies 1254001', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ Order: `bulk ${i}` }));
    expect((await batchCreate(many(1001))).body.code).toBe(1254104);
    expect((await write('POST', '/records/batch_update', { records: many(1001).map((fields) => ({ record_id: 'recX', fields })) })).body.code).toBe(1254104);
    expect((await write('POST', '/records/batch_delete', { records: Array.from({ length: 501 }, (_, i) => `rec${i}`) })).body.code).toBe(1254104);
    expect((await batchCreate([])).body.code).toBe(1254001);
    expect((await write('POST', '/records/batch_create', { records: [{ Order: 'no fields wrapper' }] })).body.code).toBe(1254001);
    expect((await write('POST', '/records/batch_update', { records: [{ fields: { Qty: 1 } }] })).body.code).toBe(1254001);
    expect((await write('POST', '/records/batch_delete', { records: [1, 2] })).body.code).toBe(1254001);
    expect((await write('POST', '/records', { Order: 'no fields' })).body.code).toBe(1254001);
    expect((await write('POST', '/records?user_id_type=email', { fields: {} })).body.code).toBe(1254001);
    const raw = async (method: string, tail: string, body: string) => {
      const res = await fetch(client.sim.url + path(tail), { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json; charset=utf-8' }, body });
      return { status: res.status, body: (await res.json()) as LarkBody };
    };
    expect((await raw('POST', '/records/batch_create', '{"records": [')).body.code).toBe(1254000);
    // A DELETE that says JSON but sends nothing is fine (the record id is in the path).
    const gone = orders().recordId(0);
    expect(await raw('DELETE', `/records/${gone}`, '')).toEqual({ status: 200, body: { code: 0, msg: 'success', data: { deleted: true, record_id: gone } } });

    const full = await batchCreate(many(1000));
    expect(full.body.code).toBe(0);
    expect(full.body.data!.records).toHaveLength(1000);
    const ids = full.body.data!.records.map((r) => r.record_id);
    expect((await write('POST', '/records/batch_delete', { records: ids.slice(0, 500) })).body.code).toBe(0);
    expect((await write('POST', '/records/batch_delete', { records: ids.slice(500) })).body.code).toBe(0);
    // Unknown Base / table as reads answer them.
    expect((await write('POST', '/records', { fields: {} }, token, ordersId, 'bascnNoSuchBase')).body.code).toBe(1254040);
    expect((await write('POST', '/records', { fields: {} }, token, 'tblNoSuchTable')).body.code).toBe(1254041);
  });

  it('value shapes: each field type refuses a wrong shape with its code (1254060–1254069, 1254072, 1254074); unknown names 1254045', async () => {
    const cases: Array<[string, unknown, number]> = [
      ['Order', 42, 1254060],
      ['Order', [{ type: 'text', text: 'segments' }], 1254060],
      ['Qty', '3', 1254061],
      ['Stage', ['Paid'], 1254062],
      ['Labels', 'gift', 1254063],
      ['Ordered', '2024-07-01', 1254064],
      ['Paid', 'yes', 1254065],
      ['Buyer', 'ou_someone', 1254066],
      ['Buyer', [{ id: 'ou_not_in_this_tenant' }], 1254066],
      ['Buyer', [{ id: client.sim.oauth.users.list(TENANT)[0]!.openId, name: 'extra keys' }], 1254066],
      ['Project', ['recNoSuchProject'], 1254067],
      ['Project', 'recOne', 1254074],
      ['Project', [{ record_id: 'recOne' }], 1254074],
      ['Page', 'https://example.com', 1254068],
      ['Page', { text: 'no link' }, 1254068],
      ['Files', ['boxcnSomething'], 1254069],
      ['Files', [{ file_token: 'boxcnNeverUploaded' }], 1254303],
      ['Contact', '138-0000-0000', 1254072],
      ['Contact', 13800000000, 1254072],
      ['No such field', 'x', 1254045],
    ];
    const before = orders().count;
    for (const [name, value, code] of cases) {
      const res = await write('POST', '/records', { fields: { Order: 'shape test', [name]: value } });
      expect({ name, value, code: res.body.code, status: res.status }).toEqual({ name, value, code, status: 200 });
    }
    expect((await write('POST', '/records', { fields: { Order: 'x'.repeat(100_001) } })).body.code).toBe(1254130);
    expect(orders().count).toBe(before);
  });

  it('read-only fields (formula, lookup, auto number, created/modified time and by) answer 1254015 with HTTP 400', async () => {
    const id = orders().recordId(5);
    const readOnly = new Set<number>([
      FieldType.Formula,
      FieldType.Lookup,
      FieldType.AutoNumber,
      FieldType.CreatedTime,
      FieldType.ModifiedTime,
      FieldType.CreatedUser,
      FieldType.ModifiedUser,
    ]);
    for (const f of orders().fields.filter((x) => readOnly.has(x.type))) {
      const created = await write('POST', '/records', { fields: { Order: 'ro', [f.field_name]: null } });
      expect({ field: f.field_name, status: created.status, code: created.body.code }).toEqual({ field: f.field_name, status: 400, code: 1254015 });
      const updated = await write('PUT', `/records/${id}`, { fields: { [f.field_name]: 1 } });
      expect(updated.body.code).toBe(1254015);
    }
    expect(orders().fields.filter((x) => readOnly.has(x.type))).toHaveLength(7);
  });

  it('unknown select options are created on write (multi select: once per repetition); people by user_id_type; links by record id', async () => {
    const res = await batchCreate([{ Order: 'opts', Stage: 'On hold', Labels: ['fragile', 'fragile', 'gift'] }, { Order: 'opts 2', Stage: 'On hold' }]);
    expect(res.body.code).toBe(0);
    expect(optionsOf(orders(), 'Stage').filter((n) => n === 'On hold')).toHaveLength(1);
    expect(optionsOf(orders(), 'Labels').filter((n) => n === 'fragile')).toHaveLength(2);
    const fieldsList = await write<{ items: Array<{ field_name: string; property?: { options?: Array<{ name: string; id: string }> } }> }>('GET', '/fields?page_size=100');
    const stage = fieldsList.body.data!.items.find((f) => f.field_name === 'Stage')!;
    expect(stage.property!.options!.map((o) => o.name)).toContain('On hold');
    expect(stage.property!.options!.find((o) => o.name === 'On hold')!.id).toMatch(/^opt/);
    const [a] = await batchGet([res.body.data!.records[0]!.record_id]).then((d) => d.records);
    expect(a!.fields.Labels).toEqual(['fragile', 'fragile', 'gift']);

    const user = client.sim.oauth.users.list(TENANT)[1]!;
    for (const [type, id] of [
      ['user_id', user.userId],
      ['union_id', user.unionId],
      ['open_id', user.openId],
    ] as const) {
      const made = await write<{ record: Written }>('POST', `/records?user_id_type=${type}`, { fields: { Order: type, Buyer: [{ id }] } });
      expect(made.body.code).toBe(0);
      expect(made.body.data!.record.fields.Buyer).toEqual([{ id }]);
      expect(orders().get(made.body.data!.record.record_id)!.fields.Buyer).toEqual([{ id: user.openId, name: user.name, en_name: user.enName, email: user.email }]);
    }
    // An open_id passed as a user_id does not resolve.
    expect((await write('POST', '/records?user_id_type=user_id', { fields: { Buyer: [{ id: user.openId }] } })).body.code).toBe(1254066);

    const made = await write<{ record: Written }>('POST', '/records', { fields: { Order: 'clear me', Buyer: [{ id: user.openId }] } });
    const id = made.body.data!.record.record_id;
    expect((await write('PUT', `/records/${id}`, { fields: { Buyer: null, Project: [] } })).body.code).toBe(0);
    expect(orders().get(id)!.fields.Buyer).toBeUndefined();

    // A link to a record of the linked table (Projects), not of this one.
    expect((await write('PUT', `/records/${id}`, { fields: { Project: [orders().recordId(1)] } })).body.code).toBe(1254067);
  });

  it('a user token writes as that user', async () => {
    client.sim.setRedirectUris(DATA_APP.appId, [REDIRECT]);
    const user = client.sim.oauth.users.list(TENANT)[2]!;
    const { code } = redirectParams(client.sim.authorizeAs(DATA_APP.appId, user, { redirect_uri: REDIRECT, scope: 'bitable:app' }));
    const userToken = (await exchange(client.sim, DATA_APP, code!)).body.access_token!;
    const res = await write<{ record: Written }>('POST', '/records', { fields: { Order: 'by a user' } }, userToken);
    expect(res.body.code).toBe(0);
    const rec = orders().get(res.body.data!.record.record_id)!;
    const person = { id: user.openId, name: user.name, en_name: user.enName, email: user.email };
    expect(rec.created_by).toEqual(person);
    expect(rec.last_modified_by).toEqual(person);
    expect(rec.fields.Creator).toEqual([person]);
  });

  it('tables the caller may not edit or read answer 91403 (HTTP 403) and are left alone', async () => {
    const projects = bitable.table(appToken, projectsId);
    projects.writeDenied = true;
    const res = await write('POST', '/records', { fields: { Title: 'nope' } }, token, projectsId);
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 403, code: 91403 });
    projects.writeDenied = false;
    const ok = await write<{ record: Written }>('POST', '/records', { fields: { Title: 'yes', Budget: 10 } }, token, projectsId);
    expect(ok.body.code).toBe(0);
    // The Score formula follows Budget.
    expect(projects.get(ok.body.data!.record.record_id)!.fields.Score).toEqual({ type: 2, value: [20] });
  });

  describe('media upload_all for attachment cells', () => {
    const upload = async (fields: Record<string, string | undefined>, file: Buffer | undefined, fileType = 'application/pdf', t = token) => {
      const form = new FormData();
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) form.append(k, v);
      if (file) form.append('file', new Blob([file], { type: fileType }), fields.file_name ?? 'f');
      const res = await fetch(client.sim.url + UPLOAD_ALL_PATH, { method: 'POST', headers: { authorization: `Bearer ${t}` }, body: form });
      return { status: res.status, body: (await res.json()) as Body<{ file_token: string }> };
    };
    const pdf = Buffer.from('%PDF-1.4 simulated receipt\n');

    it('uploads into a Base and the file_token fills an attachment cell there (read as {file_token, name, type, size, url, tmp_url})', async () => {
      const up = await upload({ file_name: 'receipt.pdf', parent_type: 'bitable_file', parent_node: appToken, size: String(pdf.length) }, pdf);
      expect(up.status).toBe(200);
      expect(up.body.code).toBe(0);
      const fileToken = up.body.data!.file_token;
      expect(fileToken).toMatch(/^boxcn[A-Za-z0-9]{22}$/);
      const img = await upload({ file_name: 'photo.png', parent_type: 'bitable_image', parent_node: appToken, size: '4' }, Buffer.from([0x89, 0x50, 0x4e, 0x47]), 'application/octet-stream');
      expect(img.body.code).toBe(0);

      const made = await write<{ record: Written }>('POST', '/records', { fields: { Order: 'with files', Files: [{ file_token: fileToken }, { file_token: img.body.data!.file_token }] } });
      expect(made.body.code).toBe(0);
      expect(made.body.data!.record.fields.Files).toEqual([{ file_token: fileToken }, { file_token: img.body.data!.file_token }]);
      const [rec] = (await batchGet([made.body.data!.record.record_id])).records;
      const files = rec!.fields.Files as Array<Record<string, unknown>>;
      expect(files[0]).toMatchObject({ file_token: fileToken, name: 'receipt.pdf', type: 'application/pdf', size: pdf.length });
      expect(files[1]).toMatchObject({ name: 'photo.png', type: 'image/png', size: 4 });
      expect(String(files[0]!.url)).toContain(`/open-apis/drive/v1/medias/${fileToken}/download`);
      expect(String(files[0]!.tmp_url)).toContain(`file_tokens=${fileToken}`);
    });

    it('a file_token uploaded to another Base cannot be used here (1254303)', async () => {
      const other = bitable.refs.wiki.appToken;
      const up = await upload({ file_name: 'elsewhere.pdf', parent_type: 'bitable_file', parent_node: other, size: String(pdf.length) }, pdf);
      expect(up.body.code).toBe(0);
      const res = await write('POST', '/records', { fields: { Files: [{ file_token: up.body.data!.file_token }] } });
      expect(res.body.code).toBe(1254303);
    });

    it('upload errors: missing fields 1061002, bad name 1061008, size 1061043 / 1062009, unknown parent 1061044, no token 99991661', async () => {
      const ok = { file_name: 'a.pdf', parent_type: 'bitable_file', parent_node: appToken, size: String(pdf.length) };
      const codeOf = async (fields: Record<string, string | undefined>, file: Buffer | null = pdf) => {
        const r = await upload(fields, file ?? undefined);
        return [r.status, r.body.code];
      };
      expect(await codeOf({ ...ok, parent_node: undefined })).toEqual([400, 1061002]);
      expect(await codeOf(ok, null)).toEqual([400, 1061002]);
      expect(await codeOf({ ...ok, parent_type: 'bitable_video' })).toEqual([400, 1061002]);
      expect(await codeOf({ ...ok, size: 'big' })).toEqual([400, 1061002]);
      expect(await codeOf({ ...ok, file_name: 'x'.repeat(251) })).toEqual([400, 1061008]);
      expect(await codeOf({ ...ok, size: String(20 * 1024 * 1024 + 1) })).toEqual([400, 1061043]);
      expect(await codeOf({ ...ok, size: String(pdf.length + 1) })).toEqual([400, 1062009]);
      expect(await codeOf({ ...ok, parent_node: 'bascnNoSuchBase' })).toEqual([400, 1061044]);
      expect(await codeOf({ ...ok, parent_type: 'docx_file' })).toEqual([400, 1061044]);
      expect((await upload(ok, pdf, 'application/pdf', '')).body.code).toBe(99991661);

      // The file itself over the limit (a small limit here; 20 MB by default).
      client.data.bitableWrites.mediaMaxBytes = 16;
      try {
        const big = Buffer.alloc(64, 1);
        expect(await codeOf({ ...ok, size: '64' }, big)).toEqual([400, 1061043]);
        expect(await codeOf({ ...ok, size: '10' }, big)).toEqual([400, 1061043]);
      } finally {
        client.data.bitableWrites.mediaMaxBytes = 20 * 1024 * 1024;
      }
      expect(await codeOf(ok)).toEqual([200, 0]);
    });
  });
});
