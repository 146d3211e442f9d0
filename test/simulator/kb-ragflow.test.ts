import { afterEach, describe, expect, it } from 'vitest';
import { RagflowFake, type RagflowOptions } from '../../simulator/kb/index.js';
import { call, filesForm } from './kb-http.js';

// RagflowFake over HTTP, against ../shared/kb/ragflow-dify.md §1, §3 and §4: every endpoint, the
// HTTP-200 errors, duplicate renaming, the empty-ids delete (old vs new), capped page sizes, and
// a hanging parse with its stop.

const running: RagflowFake[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((f) => f.stop()));
});

async function setup(opts: RagflowOptions = {}) {
  // A frozen clock: the parse model moves only with advanceTime().
  const frozen = Date.now();
  const fake = new RagflowFake({ parseMs: 1_000, clock: () => frozen, ...opts });
  running.push(fake);
  const url = await fake.start();
  const { apiKey, tenantId } = fake.addOwner();
  const ds = fake.addDataset(apiKey, { name: 'wiki' });
  const docs = `/api/v1/datasets/${ds.id}/documents`;
  const upload = (files: Array<[string, string | Buffer]>, key = apiKey, query = '') =>
    call(url, 'POST', docs + query, { key, form: filesForm(files) });
  const list = (query = '', key = apiKey) => call(url, 'GET', `${docs}${query}`, { key });
  return { fake, url, apiKey, tenantId, ds, docs, upload, list };
}

describe('RagflowFake: auth', () => {
  it('≤ v0.24: a missing header is HTTP 200 code 0 data false; a one-word header asks for the format; a bad key is code 109', async () => {
    const { url, docs, apiKey } = await setup({ version: '0.24.0' });
    const none = await call(url, 'GET', docs);
    expect(none.status).toBe(200);
    expect(none.body).toEqual({ code: 0, data: false, message: "`Authorization` can't be empty" });
    const bare = await call(url, 'GET', docs, { authorization: apiKey });
    expect(bare.status).toBe(200);
    expect(bare.body).toMatchObject({ code: 0, data: false, message: 'Please check your authorization format.' });
    const bad = await call(url, 'GET', docs, { key: 'ragflow-nope' });
    expect(bad.status).toBe(200);
    expect(bad.body).toEqual({ code: 109, data: false, message: 'Authentication error: API key is invalid!' });
    expect((await call(url, 'GET', docs, { key: apiKey })).body.code).toBe(0);
  });

  it('v0.25+: a real HTTP 401 {code:401}; the bare key and any-case "bearer" are accepted', async () => {
    const { url, docs, apiKey } = await setup({ version: '0.26.0' });
    for (const authorization of ['', 'Bearer ragflow-nope']) {
      const r = await call(url, 'GET', docs, { authorization });
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ code: 401, message: 'Unauthorized', data: null });
    }
    expect((await call(url, 'GET', docs, { authorization: apiKey })).body.code).toBe(0);
    expect((await call(url, 'GET', docs, { authorization: `bEaReR ${apiKey}` })).body.code).toBe(0);
  });

  it('v0.25.0 mixes both: list answers 401, delete and parse still answer HTTP 200 code 109', async () => {
    const { url, docs, ds } = await setup({ version: '0.25.0' });
    expect((await call(url, 'GET', docs, { key: 'ragflow-x' })).status).toBe(401);
    const del = await call(url, 'DELETE', docs, { key: 'ragflow-x', json: { ids: ['a'] } });
    expect([del.status, del.body.code]).toEqual([200, 109]);
    const parse = await call(url, 'POST', `/api/v1/datasets/${ds.id}/chunks`, { key: 'ragflow-x', json: { document_ids: ['a'] } });
    expect([parse.status, parse.body.code]).toEqual([200, 109]);
  });

  it("keys are per owner: another owner's dataset is code 102 \"You don't own the dataset\"", async () => {
    const { fake, url, docs } = await setup();
    const other = fake.addOwner();
    const r = await call(url, 'GET', docs, { key: other.apiKey });
    expect(r.status).toBe(200);
    expect(r.body.code).toBe(102);
    expect(r.body.message).toMatch(/You don't own the dataset/);
    fake.revokeApiKey(other.apiKey);
    expect((await call(url, 'GET', docs, { key: other.apiKey })).status).toBe(401);
  });
});

describe('RagflowFake: datasets', () => {
  it('create and list: total_datasets, paging, ordering, exact-name filter', async () => {
    const { url, apiKey } = await setup();
    for (const name of ['b', 'c']) {
      const r = await call(url, 'POST', '/api/v1/datasets', { key: apiKey, json: { name, chunk_method: 'naive' } });
      expect(r.body.code).toBe(0);
      expect(r.body.data).toMatchObject({ name, chunk_method: 'naive', document_count: 0, status: '1' });
      expect(r.body.data.id).toMatch(/^[0-9a-f]{32}$/);
    }
    const dup = await call(url, 'POST', '/api/v1/datasets', { key: apiKey, json: { name: 'b' } });
    expect([dup.status, dup.body.code]).toEqual([200, 103]);
    const all = await call(url, 'GET', '/api/v1/datasets?page=1&page_size=2&orderby=create_time&desc=false', { key: apiKey });
    expect(all.body.code).toBe(0);
    expect(all.body.total_datasets).toBe(3);
    expect(all.body.data.map((d: { name: string }) => d.name)).toEqual(['wiki', 'b']);
    expect(typeof all.body.data[0].create_time).toBe('number');
    const byName = await call(url, 'GET', '/api/v1/datasets?name=c', { key: apiKey });
    expect(byName.body.data.map((d: { name: string }) => d.name)).toEqual(['c']);
  });

  it('a name/id filter that misses is an error, not an empty list (code by version)', async () => {
    for (const [version, code] of [['0.19.0', 102], ['0.24.0', 108], ['0.27.0', 102]] as const) {
      const { url, apiKey } = await setup({ version });
      const r = await call(url, 'GET', '/api/v1/datasets?name=nope', { key: apiKey });
      expect(r.status).toBe(200);
      expect(r.body.code).toBe(code);
    }
  });

  it('v0.20+: unknown query parameters and non-UUID1 ids are code 101; v0.27 include_parsing_status; v0.26 page_size ≤ 100', async () => {
    const { url, apiKey, upload } = await setup({ version: '0.27.0' });
    const extra = await call(url, 'GET', '/api/v1/datasets?foo=1', { key: apiKey });
    expect(extra.body.code).toBe(101);
    expect(extra.body.message).toMatch(/foo.*Extra inputs are not permitted/);
    expect((await call(url, 'GET', '/api/v1/datasets?id=123', { key: apiKey })).body.code).toBe(101);
    expect((await call(url, 'GET', '/api/v1/datasets?page_size=101', { key: apiKey })).body.code).toBe(101);
    await upload([['a.md', 'x']]);
    const withCounts = await call(url, 'GET', '/api/v1/datasets?include_parsing_status=true', { key: apiKey });
    expect(withCounts.body.data[0]).toMatchObject({ unstart_count: 1, running_count: 0, done_count: 0 });

    const old = await setup({ version: '0.19.0' });
    expect((await call(old.url, 'GET', '/api/v1/datasets?foo=1', { key: old.apiKey })).body.code).toBe(0);
  });

  it('GET /datasets/{id} exists from v0.26; before, the path only has PUT, so GET is a code-100 405', async () => {
    const neu = await setup({ version: '0.26.0' });
    const r = await call(neu.url, 'GET', `/api/v1/datasets/${neu.ds.id}`, { key: neu.apiKey });
    expect(r.body).toMatchObject({ code: 0, data: { id: neu.ds.id, name: 'wiki' } });
    const old = await setup({ version: '0.25.2' });
    const o = await call(old.url, 'GET', `/api/v1/datasets/${old.ds.id}`, { key: old.apiKey });
    expect([o.status, o.body]).toEqual([200, { code: 100, message: "<MethodNotAllowed '405: Method Not Allowed'>" }]);
  });
});

describe('RagflowFake: upload', () => {
  it('several files per request; an exact-name collision is silently renamed name(1).ext, (2), …', async () => {
    const { fake, upload } = await setup();
    const first = await upload([['Page.md', '# one'], ['Page.md', '# two']]);
    expect(first.status).toBe(200);
    expect(first.body.code).toBe(0);
    expect(first.body.data.map((d: { name: string }) => d.name)).toEqual(['Page.md', 'Page(1).md']);
    expect(first.body.data[0]).toMatchObject({ run: 'UNSTART', suffix: 'md', type: 'doc', source_type: 'local', size: 5, chunk_method: 'naive' });
    expect(first.body.data[0]).not.toHaveProperty('create_time');
    const again = await upload([['Page.md', '# three'], ['Page(1).md', '# four']]);
    expect(again.body.data.map((d: { name: string }) => d.name)).toEqual(['Page(2).md', 'Page(3).md']);
    // Name matching follows MySQL's case-insensitive collation by default (unconfirmed, §5).
    const upper = await upload([['PAGE.md', 'x']]);
    expect(upper.body.data[0].name).toBe('PAGE(4).md');
    expect(fake.documents().length).toBe(5);
    expect(fake.findDocuments({ name: 'Page(2).md' })[0]?.content.toString()).toBe('# three');
  });

  it('names over 255 UTF-8 bytes are code 101: 85 Chinese characters + ".md" (258 bytes) fail, 84 (255 bytes) fit', async () => {
    const { upload, fake } = await setup();
    const tooLong = await upload([[`${'文'.repeat(85)}.md`, 'x']]);
    expect(tooLong.body).toEqual({ code: 101, message: 'File name must be 255 bytes or less.' });
    const fits = await upload([[`${'文'.repeat(84)}.md`, 'x']]);
    expect(fits.body.code).toBe(0);
    expect(fake.documents()[0]?.name).toBe(`${'文'.repeat(84)}.md`);
  });

  it('an unsupported type is a per-file error: code 500 with the uploaded ones in data (v0.25+), message only before', async () => {
    const neu = await setup({ version: '0.25.0' });
    const r = await neu.upload([['ok.md', 'x'], ['bad.exe', 'y']]);
    expect(r.status).toBe(200);
    expect(r.body.code).toBe(500);
    expect(r.body.message).toBe('bad.exe: This type of file has not been supported yet!');
    expect(r.body.data.map((d: { name: string }) => d.name)).toEqual(['ok.md']);
    expect(r.body.data[0].content_hash).toMatch(/^[0-9a-f]{32}$/);
    const old = await setup({ version: '0.24.0' });
    const o = await old.upload([['ok.md', 'x'], ['bad.exe', 'y']]);
    expect(o.body).toEqual({ code: 500, message: 'bad.exe: This type of file has not been supported yet!' });
    expect(old.fake.documents().map((d) => d.name)).toEqual(['ok.md']);
  });

  it('no file part is code 101; return_raw_files skips the key renaming (v0.25+); type=empty (v0.26+)', async () => {
    const { url, docs, apiKey, upload, fake } = await setup();
    const none = await call(url, 'POST', docs, { key: apiKey, json: {} });
    expect(none.body).toEqual({ code: 101, message: 'No file part!' });
    const raw = await upload([['r.md', 'x']], apiKey, '?return_raw_files=true');
    expect(raw.body.data[0]).toMatchObject({ kb_id: expect.any(String), parser_id: 'naive', run: '0' });
    const empty = await call(url, 'POST', `${docs}?type=empty`, { key: apiKey, json: { name: 'blank.md' } });
    expect(empty.body.data[0]).toMatchObject({ name: 'blank.md', size: 0 });
    expect(fake.documents().length).toBe(2);
  });

  it('a body above MAX_CONTENT_LENGTH meets the proxy 413', async () => {
    const { upload } = await setup({ maxContentLength: 1_000 });
    const r = await upload([['big.md', 'x'.repeat(5_000)]]);
    expect(r.status).toBe(413);
  });
});

describe('RagflowFake: list documents', () => {
  it('data.total + data.docs with every field; keywords is a case-insensitive substring; name/id misses are code 102', async () => {
    const { upload, list } = await setup({ version: '0.24.0' });
    await upload([['Alpha Guide.md', 'a'], ['beta.txt', 'b'], ['gamma.md', 'c']]);
    const all = await list('?orderby=create_time&desc=false');
    expect(all.body.code).toBe(0);
    expect(all.body).not.toHaveProperty('message');
    expect(all.body.data.total).toBe(3);
    expect(all.body.data).not.toHaveProperty('total_datasets');
    const doc = all.body.data.docs[0];
    for (const k of ['id', 'name', 'location', 'size', 'suffix', 'type', 'source_type', 'thumbnail', 'create_time', 'update_time', 'create_date', 'update_date', 'run', 'progress', 'progress_msg', 'process_begin_at', 'process_duration', 'chunk_count', 'token_count', 'chunk_method', 'parser_config', 'dataset_id', 'created_by', 'status', 'meta_fields']) {
      expect(doc).toHaveProperty(k);
    }
    expect(doc).toMatchObject({ name: 'Alpha Guide.md', run: 'UNSTART', progress: 0, status: '1', meta_fields: {} });
    expect(doc).not.toHaveProperty('content_hash');
    expect(Math.abs(doc.create_time - Date.now())).toBeLessThan(60_000);
    expect((await list('?keywords=ALPHA')).body.data.docs.map((d: { name: string }) => d.name)).toEqual(['Alpha Guide.md']);
    expect((await list('?name=beta.txt')).body.data.total).toBe(1);
    expect((await list('?name=nope.md')).body).toEqual({ code: 102, message: "You don't own the document nope.md." });
    expect((await list('?id=0123')).body).toEqual({ code: 102, message: "You don't own the document 0123." });
    expect((await list(`?id=${doc.id}`)).body.data.docs[0].id).toBe(doc.id);
  });

  it('v0.26+: page_size above 100 is an error (code 100, HTTP 200 by default, 500 configurable); before, any size is served', async () => {
    const neu = await setup({ version: '0.26.0' });
    await neu.upload(Array.from({ length: 120 }, (_, i) => [`p${i}.md`, 'x'] as [string, string]));
    const capped = await neu.list('?page_size=101');
    expect(capped.status).toBe(200);
    expect(capped.body.code).toBe(100);
    expect((await neu.list('?page_size=100')).body.data.docs).toHaveLength(100);
    const page2 = await neu.list('?page=2&page_size=100');
    expect(page2.body.data).toMatchObject({ total: 120 });
    expect(page2.body.data.docs).toHaveLength(20);
    expect((await neu.list('?page_size=30')).body.message).toBe('success');
    neu.fake.setOptions({ pageSizeErrorHttpStatus: 500 });
    expect((await neu.list('?page_size=500')).status).toBe(500);

    const old = await setup({ version: '0.25.2' });
    await old.upload(Array.from({ length: 120 }, (_, i) => [`p${i}.md`, 'x'] as [string, string]));
    expect((await old.list('?page_size=200')).body.data.docs).toHaveLength(120);
  });

  it('v0.26 ids filter, capped at 100 ids on v0.27; suffix and run filters (v0.22+)', async () => {
    const { upload, list, fake } = await setup({ version: '0.27.0' });
    const up = await upload([['a.md', '1'], ['b.txt', '2'], ['c.md', '3']]);
    const [a, b] = up.body.data as Array<{ id: string }>;
    const byIds = await list(`?ids=${a?.id}&ids=${b?.id}`);
    expect(byIds.body.data.docs.map((d: { id: string }) => d.id).sort()).toEqual([a?.id, b?.id].sort());
    const tooMany = await list(`?${Array.from({ length: 101 }, (_, i) => `ids=x${i}`).join('&')}`);
    expect(tooMany.body.code).toBe(100);
    expect((await list('?suffix=txt')).body.data.docs.map((d: { name: string }) => d.name)).toEqual(['b.txt']);
    fake.finishParse(a?.id ?? '');
    expect((await list('?run=UNSTART&run=0')).body.data.total).toBe(3);
  });

  it('metadata_condition (v0.21+): `is` matches meta_fields, a condition matching nothing is an empty list with code 0', async () => {
    const { url, docs, apiKey, upload, list } = await setup({ version: '0.21.0' });
    const up = await upload([['a.md', '1'], ['b.md', '2']]);
    const id = up.body.data[0].id as string;
    await call(url, 'PUT', `${docs}/${id}`, { key: apiKey, json: { meta_fields: { lark_token: 'doxA', rev: 3 } } });
    const cond = (c: unknown) => `?metadata_condition=${encodeURIComponent(JSON.stringify(c))}`;
    const hit = await list(cond({ logic: 'and', conditions: [{ name: 'lark_token', comparison_operator: 'is', value: 'doxA' }] }));
    expect(hit.body.data.docs.map((d: { id: string }) => d.id)).toEqual([id]);
    expect(hit.body.data.docs[0].meta_fields).toEqual({ lark_token: 'doxA', rev: 3 });
    const miss = await list(cond({ conditions: [{ name: 'lark_token', comparison_operator: 'is', value: 'nope' }] }));
    expect(miss.body).toEqual({ code: 0, data: { total: 0, docs: [] } });
    const gt = await list(cond({ conditions: [{ name: 'rev', comparison_operator: '>', value: 2 }] }));
    expect(gt.body.data.total).toBe(1);
    expect((await list('?metadata_condition=%7Bbad')).body.code).toBe(102);
  });

  it('create_time_from/to filter after pagination, so total ignores them', async () => {
    const { upload, list, fake } = await setup({ version: '0.21.0' });
    await upload([['a.md', '1']]);
    fake.advanceTime(10_000);
    await upload([['b.md', '2']]);
    const cut = fake.documents().find((d) => d.name === 'b.md')?.createTime ?? 0;
    const r = await list(`?create_time_from=${cut}`);
    expect(r.body.data.total).toBe(2);
    expect(r.body.data.docs.map((d: { name: string }) => d.name)).toEqual(['b.md']);
  });
});

describe('RagflowFake: update document', () => {
  it('PATCH renames (same extension, ≤255 bytes, no clash), replaces meta_fields, enables/disables, resets on a new chunk method', async () => {
    const { url, docs, apiKey, upload, fake } = await setup({ version: '0.27.0' });
    const up = await upload([['a.md', 'hello world'], ['b.md', 'x']]);
    const id = up.body.data[0].id as string;
    const patch = (json: unknown) => call(url, 'PATCH', `${docs}/${id}`, { key: apiKey, json });
    expect((await patch({ name: 'a.txt' })).body).toEqual({ code: 101, message: "The extension of file can't be changed" });
    expect((await patch({ name: `${'x'.repeat(253)}.md` })).body.code).toBe(101);
    expect((await patch({ name: 'B.md' })).body).toEqual({ code: 102, message: 'Duplicated document name in the same dataset.' });
    const renamed = await patch({ name: 'renamed.md', meta_fields: { lark_token: 'doxA', tags: ['a,b', 'c'] }, enabled: 0, unknown_field: 1 });
    expect(renamed.body.code).toBe(0);
    expect(renamed.body.data).toMatchObject({ id, name: 'renamed.md', status: '0', meta_fields: { lark_token: 'doxA', tags: ['a', 'b', 'c'] } });
    // meta_fields replaces the whole dict.
    expect((await patch({ meta_fields: { other: 1 } })).body.data.meta_fields).toEqual({ other: 1 });
    expect((await patch({ chunk_count: 5 })).body).toEqual({ code: 101, message: "Can't change `chunk_count`." });
    expect((await patch({ chunk_count: 0, token_count: 0 })).body.code).toBe(0);
    await call(url, 'POST', `/api/v1/datasets/${fake.documents()[0]?.datasetId}/chunks`, { key: apiKey, json: { document_ids: [id] } });
    fake.finishParse(id);
    expect(fake.document(id)?.status).toBe('DONE');
    const reset = await patch({ chunk_method: 'qa' });
    expect(reset.body.data).toMatchObject({ chunk_method: 'qa', run: 'UNSTART', progress: 0, chunk_count: 0 });
    expect((await patch({ chunk_method: 'nope' })).body.code).toBe(101);
    expect((await call(url, 'PATCH', `${docs}/unknown`, { key: apiKey, json: {} })).body.code).toBe(102);
    expect(fake.document(id)).toMatchObject({ name: 'renamed.md', enabled: false, metadata: { other: 1 } });
  });

  it('method churn: PUT only ≤0.24, PATCH only 0.25.0–0.25.1 (PUT is a code-100 405), both from 0.25.2', async () => {
    const cases = [
      ['0.24.0', { PUT: 0, PATCH: 100 }],
      ['0.25.0', { PUT: 100, PATCH: 0 }],
      ['0.25.1', { PUT: 100, PATCH: 0 }],
      ['0.25.2', { PUT: 0, PATCH: 0 }],
    ] as const;
    for (const [version, want] of cases) {
      const { url, docs, apiKey, upload } = await setup({ version });
      const id = (await upload([['a.md', 'x']])).body.data[0].id as string;
      for (const method of ['PUT', 'PATCH'] as const) {
        const r = await call(url, method, `${docs}/${id}`, { key: apiKey, json: { meta_fields: { k: 'v' } } });
        expect(r.status).toBe(200);
        expect([version, method, r.body.code]).toEqual([version, method, want[method]]);
        if (want[method] === 100) expect(r.body.message).toBe("<MethodNotAllowed '405: Method Not Allowed'>");
      }
    }
  });

  it('older servers ignore what they do not know: meta_fields before v0.17, enabled before v0.19; lists are not split before v0.24', async () => {
    const v16 = await setup({ version: '0.16.0' });
    const id16 = (await v16.upload([['a.md', 'x']])).body.data[0].id as string;
    await call(v16.url, 'PUT', `${v16.docs}/${id16}`, { key: v16.apiKey, json: { meta_fields: { k: 'v' } } });
    expect(v16.fake.document(id16)?.metadata).toEqual({});
    const v18 = await setup({ version: '0.18.0' });
    const id18 = (await v18.upload([['a.md', 'x']])).body.data[0].id as string;
    const r18 = await call(v18.url, 'PUT', `${v18.docs}/${id18}`, { key: v18.apiKey, json: { enabled: 0, meta_fields: { tags: ['a,b'] } } });
    expect(r18.body.data).toMatchObject({ status: '1', meta_fields: { tags: ['a,b'] } });
  });
});

describe('RagflowFake: delete documents', () => {
  for (const [label, body] of [
    ['an empty ids list', { ids: [] }],
    ['no body at all', undefined],
    ['a misnamed key (document_ids)', { document_ids: ['whatever'] }],
  ] as const) {
    it(`≤ v0.24: ${label} deletes EVERY document of the dataset`, async () => {
      const { url, docs, apiKey, upload, fake, ds } = await setup({ version: '0.24.0' });
      await upload([['a.md', '1'], ['b.md', '2'], ['c.md', '3']]);
      const r = await call(url, 'DELETE', docs, { key: apiKey, ...(body === undefined ? {} : { json: body }) });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ code: 0 });
      expect(fake.documents(ds.id)).toEqual([]);
      expect(fake.writes.deletes).toBe(3);
    });
  }

  it('≤ v0.24: unknown ids answer code 102 after the valid ones were already deleted', async () => {
    const { url, docs, apiKey, upload, fake } = await setup({ version: '0.20.0' });
    const up = await upload([['a.md', '1'], ['b.md', '2']]);
    const r = await call(url, 'DELETE', docs, { key: apiKey, json: { ids: [up.body.data[0].id, 'ghost'] } });
    expect(r.body).toEqual({ code: 102, message: "Documents not found: ['ghost']" });
    expect(fake.documents().map((d) => d.name)).toEqual(['b.md']);
  });

  it('v0.25+: empty ids without delete_all is code 102 and deletes nothing; delete_all deletes all; ids + delete_all is an error', async () => {
    const { url, docs, apiKey, upload, fake } = await setup({ version: '0.25.0' });
    const up = await upload([['a.md', '1'], ['b.md', '2']]);
    for (const json of [{ ids: [] }, {}, { document_ids: [up.body.data[0].id] }]) {
      const r = await call(url, 'DELETE', docs, { key: apiKey, json });
      expect(r.status).toBe(200);
      expect(r.body.code).toBe(102);
    }
    expect((await call(url, 'DELETE', docs, { key: apiKey })).body.code).toBe(102);
    expect(fake.documents()).toHaveLength(2);
    expect((await call(url, 'DELETE', docs, { key: apiKey, json: { ids: [up.body.data[0].id], delete_all: true } })).body.code).toBe(101);
    const all = await call(url, 'DELETE', docs, { key: apiKey, json: { delete_all: true } });
    expect(all.body).toEqual({ code: 0, data: { deleted: 2 } });
    expect(fake.documents()).toEqual([]);
  });

  it('v0.25+: one unknown id fails the whole request before anything is deleted; duplicate ids are rejected', async () => {
    const { url, docs, apiKey, upload, fake } = await setup({ version: '0.27.0' });
    const up = await upload([['a.md', '1'], ['b.md', '2']]);
    const [a, b] = (up.body.data as Array<{ id: string }>).map((d) => d.id);
    const mixed = await call(url, 'DELETE', docs, { key: apiKey, json: { ids: [a, 'ghost'] } });
    expect(mixed.body).toEqual({ code: 102, message: "Documents not found: ['ghost']" });
    expect(fake.documents()).toHaveLength(2);
    expect((await call(url, 'DELETE', docs, { key: apiKey, json: { ids: [a, a] } })).body.code).toBe(101);
    const ok = await call(url, 'DELETE', docs, { key: apiKey, json: { ids: [a, b] } });
    expect(ok.body).toEqual({ code: 0, data: { deleted: 2 } });
  });
});

describe('RagflowFake: parse, status, stop, download', () => {
  it('parse moves UNSTART → RUNNING (progress grows) → DONE with progress 1; parsing a RUNNING document is code 102', async () => {
    const { url, ds, apiKey, upload, list, fake } = await setup();
    const id = (await upload([['a.md', 'hello world '.repeat(50)]])).body.data[0].id as string;
    const chunks = `/api/v1/datasets/${ds.id}/chunks`;
    expect((await call(url, 'POST', chunks, { key: apiKey, json: {} })).body).toEqual({ code: 102, message: '`document_ids` is required' });
    expect((await call(url, 'POST', chunks, { key: apiKey, json: { document_ids: [id] } })).body).toEqual({ code: 0 });
    const running = (await list(`?id=${id}`)).body.data.docs[0];
    expect(running).toMatchObject({ run: 'RUNNING', chunk_count: 0 });
    expect(running.progress_msg).toMatch(/Task is queued/);
    const again = await call(url, 'POST', chunks, { key: apiKey, json: { document_ids: [id] } });
    expect(again.body).toEqual({ code: 102, message: "Can't parse document that is currently being processed" });
    fake.advanceTime(500);
    const half = (await list(`?id=${id}`)).body.data.docs[0];
    expect(half.run).toBe('RUNNING');
    expect(half.progress).toBeGreaterThan(0.4);
    expect(half.progress).toBeLessThan(1);
    fake.advanceTime(600);
    const done = (await list(`?id=${id}`)).body.data.docs[0];
    expect(done).toMatchObject({ run: 'DONE', progress: 1 });
    expect(done.chunk_count).toBeGreaterThan(0);
    // A DONE document is parsed again from scratch.
    await call(url, 'POST', chunks, { key: apiKey, json: { document_ids: [id] } });
    expect((await list(`?id=${id}`)).body.data.docs[0]).toMatchObject({ run: 'RUNNING', progress: 0, chunk_count: 0 });
  });

  it('unknown ids are code 102 while the known ids of the same request were queued', async () => {
    const { url, ds, apiKey, upload, fake } = await setup();
    const id = (await upload([['a.md', 'x']])).body.data[0].id as string;
    const r = await call(url, 'POST', `/api/v1/datasets/${ds.id}/chunks`, { key: apiKey, json: { document_ids: [id, 'ghost'] } });
    expect(r.body).toEqual({ code: 102, message: "Documents not found: ['ghost']" });
    expect(fake.document(id)?.status).toBe('RUNNING');
  });

  it('a hanging parse stays RUNNING forever; stop moves it to CANCEL; stopping a non-running document is code 102 DOC_STOP_PARSING_INVALID_STATE', async () => {
    const { url, ds, apiKey, upload, list, fake } = await setup({ version: '0.27.0' });
    fake.hangParse({ name: 'stuck.md', times: 1 });
    const up = await upload([['stuck.md', 'x'], ['fine.md', 'y']]);
    const [stuck, fine] = (up.body.data as Array<{ id: string }>).map((d) => d.id);
    const chunks = `/api/v1/datasets/${ds.id}/chunks`;
    await call(url, 'POST', chunks, { key: apiKey, json: { document_ids: [stuck, fine] } });
    fake.advanceTime(3_600_000);
    const rows = (await list('?orderby=name&desc=false')).body.data.docs as Array<{ name: string; run: string; progress: number }>;
    expect(rows.map((d) => [d.name, d.run, d.progress])).toEqual([
      ['fine.md', 'DONE', 1],
      ['stuck.md', 'RUNNING', 0],
    ]);
    const stop = await call(url, 'DELETE', chunks, { key: apiKey, json: { document_ids: [stuck] } });
    expect(stop.body).toEqual({ code: 0 });
    expect(fake.document(stuck ?? '')).toMatchObject({ status: 'CANCEL', progress: 0 });
    const stopAgain = await call(url, 'DELETE', chunks, { key: apiKey, json: { document_ids: [stuck] } });
    expect(stopAgain.body).toEqual({
      code: 102,
      message: "Can't stop parsing document that has not started or already completed",
      data: { error_code: 'DOC_STOP_PARSING_INVALID_STATE' },
    });
    // The hang rule was used up: the re-parse finishes.
    await call(url, 'POST', chunks, { key: apiKey, json: { document_ids: [stuck] } });
    fake.advanceTime(1_000);
    expect(fake.document(stuck ?? '')?.status).toBe('DONE');
    expect(fake.writes).toMatchObject({ parses: 3, stops: 1 });
  });

  it('≤ v0.24 checks progress on stop: a parse hung at progress 0 cannot be stopped, one hung above 0 can', async () => {
    const { url, ds, apiKey, upload, fake } = await setup({ version: '0.24.0' });
    fake.hangParse({ name: 'queued.md' });
    fake.hangParse({ name: 'stalled.md', hangAt: 0.05 });
    const up = await upload([['queued.md', 'x'], ['stalled.md', 'y']]);
    const [queued, stalled] = (up.body.data as Array<{ id: string }>).map((d) => d.id);
    const chunks = `/api/v1/datasets/${ds.id}/chunks`;
    await call(url, 'POST', chunks, { key: apiKey, json: { document_ids: [queued, stalled] } });
    fake.advanceTime(60_000);
    expect(fake.document(stalled ?? '')?.progress).toBeGreaterThan(0);
    const q = await call(url, 'DELETE', chunks, { key: apiKey, json: { document_ids: [queued] } });
    expect(q.body).toEqual({ code: 102, message: "Can't stop parsing document with progress at 0 or 1" });
    expect((await call(url, 'DELETE', chunks, { key: apiKey, json: { document_ids: [stalled] } })).body).toEqual({ code: 0 });
    expect(fake.document(stalled ?? '')?.status).toBe('CANCEL');
  });

  it('a failing parse ends FAIL with progress -1; the v0.26 /documents/parse and /documents/stop aliases; 0.25 has no alias', async () => {
    const { url, ds, apiKey, upload, fake } = await setup({ version: '0.26.0' });
    fake.failParse({ name: 'bad.md', message: 'boom' });
    const id = (await upload([['bad.md', 'x']])).body.data[0].id as string;
    const parse = await call(url, 'POST', `/api/v1/datasets/${ds.id}/documents/parse`, { key: apiKey, json: { document_ids: [id] } });
    expect(parse.body).toEqual({ code: 0, data: { success_count: 1 } });
    fake.advanceTime(2_000);
    expect(fake.document(id)).toMatchObject({ status: 'FAIL', progress: -1 });
    expect(fake.document(id)?.progressMsg).toMatch(/boom/);
    const stop = await call(url, 'POST', `/api/v1/datasets/${ds.id}/documents/stop`, { key: apiKey, json: { document_ids: [id] } });
    expect(stop.body.data).toEqual({ error_code: 'DOC_STOP_PARSING_INVALID_STATE' });

    const old = await setup({ version: '0.25.2' });
    const r = await call(old.url, 'POST', `/api/v1/datasets/${old.ds.id}/documents/parse`, { key: old.apiKey, json: { document_ids: ['x'] } });
    // …/documents/parse is then routed as …/documents/<document_id>, which has no POST.
    expect(r.body).toEqual({ code: 100, message: "<MethodNotAllowed '405: Method Not Allowed'>" });
  });

  it('v0.27: a dataset with an ingestion pipeline rejects /chunks with code 101', async () => {
    const { fake, url, apiKey } = await setup({ version: '0.27.0' });
    const ds = fake.addDataset(apiKey, { name: 'piped', pipelineId: 'pl-1' });
    const r = await call(url, 'POST', `/api/v1/datasets/${ds.id}/chunks`, { key: apiKey, json: { document_ids: ['x'] } });
    expect(r.body.code).toBe(101);
    expect(r.body.message).toMatch(/documents\/ingest/);
  });

  it('download answers the raw bytes; a missing document is code 102', async () => {
    const { url, docs, apiKey, upload } = await setup();
    const content = Buffer.from('# 标题\n\nbody\n');
    const id = (await upload([['doc.md', content]])).body.data[0].id as string;
    const r = await call(url, 'GET', `${docs}/${id}`, { key: apiKey });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/octet-stream');
    expect(r.bytes.equals(content)).toBe(true);
    expect((await call(url, 'GET', `${docs}/ghost`, { key: apiKey })).body).toEqual({ code: 102, message: 'The dataset not own the document ghost.' });
  });
});

describe('RagflowFake: errors and metadata endpoints', () => {
  it('unknown routes and bad JSON are HTTP 200 code 100 with the Python repr', async () => {
    const { url, docs, apiKey } = await setup();
    const nf = await call(url, 'GET', '/api/v1/nothing', { key: apiKey });
    expect([nf.status, nf.body]).toEqual([200, { code: 100, message: "<NotFound '404: Not Found'>" }]);
    const na = await call(url, 'PUT', '/api/v1/datasets', { key: apiKey, json: {} });
    expect(na.body.message).toBe("<MethodNotAllowed '405: Method Not Allowed'>");
    const bad = await call(url, 'DELETE', docs, { key: apiKey, raw: { body: '{nope', contentType: 'application/json' } });
    expect([bad.status, bad.body]).toEqual([200, { code: 100, message: "<BadRequest '400: Bad Request'>" }]);
  });

  it('v0.23+ metadata/update (selector, updates, deletes) and metadata/summary; absent before', async () => {
    const { url, ds, apiKey, upload, fake } = await setup({ version: '0.23.0' });
    const up = await upload([['a.md', '1'], ['b.md', '2']]);
    const [a, b] = (up.body.data as Array<{ id: string }>).map((d) => d.id);
    const base = `/api/v1/datasets/${ds.id}/metadata`;
    const r = await call(url, 'POST', `${base}/update`, {
      key: apiKey,
      json: { selector: { document_ids: [a, b] }, updates: [{ key: 'team', value: 'docs' }], deletes: [] },
    });
    expect(r.body).toEqual({ code: 0, data: { updated: 2, matched_docs: 2 } });
    const r2 = await call(url, 'POST', `${base}/update`, {
      key: apiKey,
      json: { selector: { document_ids: [a] }, updates: [{ key: 'team', match: 'docs', value: 'eng' }], deletes: [] },
    });
    expect(r2.body.data).toEqual({ updated: 1, matched_docs: 1 });
    expect(fake.document(a ?? '')?.metadata).toEqual({ team: 'eng' });
    const summary = await call(url, 'GET', `${base}/summary`, { key: apiKey });
    expect(summary.body.data.summary.team).toEqual(expect.arrayContaining([['eng', 1], ['docs', 1]]));
    expect((await call(url, 'POST', `${base}/update`, { key: apiKey, json: { selector: { document_ids: ['ghost'] } } })).body.code).toBe(102);

    const old = await setup({ version: '0.22.0' });
    expect((await call(old.url, 'GET', `/api/v1/datasets/${old.ds.id}/metadata/summary`, { key: old.apiKey })).body.code).toBe(100);
  });

  it('refuses versions outside v0.13 … v0.27', () => {
    expect(() => new RagflowFake({ version: '0.12.0' })).toThrow(/outside/);
    expect(() => new RagflowFake({ version: '0.28.0' })).toThrow(/outside/);
  });
});
