import { afterEach, describe, expect, it } from 'vitest';
import { DifyFake, type DifyOptions } from '../../simulator/kb/index.js';
import { call, filesForm } from './kb-http.js';

// DifyFake over HTTP, against ../shared/kb/ragflow-dify.md §2, §3 and §4: the error envelope with
// real statuses, create by text/file, the same-name upsert, update only when available, delete,
// paging with the limit cap, indexing status per batch, enable/disable/archive and metadata.

const running: DifyFake[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((f) => f.stop()));
});

async function setup(opts: DifyOptions = {}, kb: { fresh?: boolean } = {}) {
  const frozen = Date.now();
  const fake = new DifyFake({ indexMs: 1_000, clock: () => frozen, ...opts });
  running.push(fake);
  const url = await fake.start();
  const { apiKey, tenantId } = fake.addOwner();
  // A knowledge base that already has its settings, unless a fresh (empty) one is asked for.
  const ds = kb.fresh
    ? fake.addDataset(apiKey, { name: 'wiki' })
    : fake.addDataset(apiKey, { name: 'wiki', indexingTechnique: 'economy', docForm: 'text_model', processRule: { mode: 'automatic' } });
  const base = `/v1/datasets/${ds.id}`;
  const byText = (name: string, text: string, extra: Record<string, unknown> = {}) =>
    call(url, 'POST', `${base}/document/create-by-text`, { key: apiKey, json: { name, text, ...extra } });
  const byFile = (files: Array<[string, string | Buffer]>, data?: Record<string, unknown>) =>
    call(url, 'POST', `${base}/document/create-by-file`, { key: apiKey, form: filesForm(files, data ? { data: JSON.stringify(data) } : {}) });
  const complete = () => fake.advanceTime(1_000);
  return { fake, url, apiKey, tenantId, ds, base, byText, byFile, complete };
}

describe('DifyFake: auth and error envelope', () => {
  it('401 unauthorized for a missing header, a non-bearer scheme, an unknown or app key; {code, message, status}', async () => {
    const { url, base } = await setup();
    const none = await call(url, 'GET', `${base}/documents`);
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ code: 'unauthorized', message: "Authorization header must be provided and start with 'Bearer'", status: 401 });
    const basic = await call(url, 'GET', `${base}/documents`, { authorization: 'Basic abc' });
    expect(basic.body.message).toBe("Authorization scheme must be 'Bearer'");
    const app = await call(url, 'GET', `${base}/documents`, { key: 'app-123' });
    expect([app.status, app.body.code, app.body.message]).toEqual([401, 'unauthorized', 'Access token is invalid']);
  });

  it("one key reaches every knowledge base of its workspace; another workspace's is 404; enable_api off is 403", async () => {
    const { fake, url, apiKey, base, ds } = await setup();
    const second = fake.addDataset(apiKey, { name: 'second' });
    expect((await call(url, 'GET', `/v1/datasets/${second.id}/documents`, { key: apiKey })).status).toBe(200);
    const other = fake.addOwner();
    const r = await call(url, 'GET', `${base}/documents`, { key: other.apiKey });
    expect([r.status, r.body]).toEqual([404, { code: 'not_found', message: 'Dataset not found.', status: 404 }]);
    fake.setEnableApi(ds.id, false);
    const off = await call(url, 'GET', `${base}/documents`, { key: apiKey });
    expect([off.status, off.body]).toEqual([403, { code: 'forbidden', message: 'Dataset api access is not enabled.', status: 403 }]);
  });

  it('unknown routes are 404 not_found, wrong methods 405, bad JSON 400, ids that are no UUIDs are unrouted', async () => {
    const { url, apiKey, base } = await setup();
    const nf = await call(url, 'GET', '/v1/nothing', { key: apiKey });
    expect([nf.status, nf.body.code, nf.body.status]).toEqual([404, 'not_found', 404]);
    const na = await call(url, 'PUT', `${base}/documents`, { key: apiKey, json: {} });
    expect([na.status, na.body.code]).toEqual([405, 'method_not_allowed']);
    const bad = await call(url, 'POST', `${base}/document/create-by-text`, { key: apiKey, raw: { body: '{x', contentType: 'application/json' } });
    expect([bad.status, bad.body.code]).toEqual([400, 'bad_request']);
    expect((await call(url, 'GET', '/v1/datasets/not-a-uuid/documents', { key: apiKey })).status).toBe(404);
  });
});

describe('DifyFake: knowledge bases', () => {
  it('list with paging, has_more, keyword; get one', async () => {
    const { fake, url, apiKey, ds } = await setup();
    for (let i = 0; i < 3; i += 1) fake.addDataset(apiKey, { name: `kb-${i}` });
    const r = await call(url, 'GET', '/v1/datasets?page=1&limit=2', { key: apiKey });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ has_more: true, limit: 2, total: 4, page: 1 });
    expect(r.body.data).toHaveLength(2);
    expect(r.body.data[0]).toHaveProperty('indexing_technique');
    expect((await call(url, 'GET', '/v1/datasets?keyword=KB-', { key: apiKey })).body.total).toBe(3);
    const one = await call(url, 'GET', `/v1/datasets/${ds.id}`, { key: apiKey });
    expect(one.body).toMatchObject({ id: ds.id, name: 'wiki', doc_form: 'text_model', indexing_technique: 'economy' });
  });
});

describe('DifyFake: create documents', () => {
  it('create-by-text answers {document, batch}; the first document of a fresh knowledge base must carry indexing_technique', async () => {
    const { byText, fake } = await setup({}, { fresh: true });
    const missing = await byText('page.md', 'hello');
    expect([missing.status, missing.body]).toEqual([400, { code: 'invalid_param', message: 'indexing_technique is required.', status: 400 }]);
    const ok = await byText('page.md', 'hello', { indexing_technique: 'high_quality' });
    expect(ok.status).toBe(200);
    expect(ok.body.batch).toMatch(/^\d{20}$/);
    expect(ok.body.document).toMatchObject({ name: 'page.md', indexing_status: 'waiting', display_status: 'queuing', enabled: true, archived: false, doc_form: 'text_model', data_source_type: 'upload_file' });
    expect(typeof ok.body.document.created_at).toBe('number');
    expect(ok.body.document.created_at).toBeLessThan(1e11);
    // Later documents inherit the setting.
    expect((await byText('second.md', 'x')).status).toBe(200);
    expect(fake.documents().map((d) => d.content.toString()).sort()).toEqual(['hello', 'x']);
  });

  it('doc_form must match the knowledge base (text route defaults to text_model); names are truncated to 200 characters', async () => {
    const { fake, url, apiKey } = await setup();
    const kb = fake.addDataset(apiKey, { name: 'parent-child', indexingTechnique: 'high_quality', docForm: 'hierarchical_model', processRule: { mode: 'hierarchical' } });
    const path = `/v1/datasets/${kb.id}/document/create-by-text`;
    const mismatch = await call(url, 'POST', path, { key: apiKey, json: { name: 'a', text: 'b' } });
    expect([mismatch.status, mismatch.body.message]).toEqual([400, 'doc_form is different from the dataset doc_form.']);
    const ok = await call(url, 'POST', path, { key: apiKey, json: { name: '长'.repeat(250), text: 'b', doc_form: 'hierarchical_model' } });
    expect(ok.body.document.name).toBe('长'.repeat(200));
    expect((await call(url, 'POST', path.replace('create-by-text', 'create_by_text'), { key: apiKey, json: { name: 'alias', text: 'b', doc_form: 'hierarchical_model' } })).status).toBe(200);
  });

  it('create-by-file: one multipart `file` plus a JSON `data` string; file checks give 400/413/415', async () => {
    const { byFile, url, apiKey, base, fake } = await setup({ uploadFileSizeLimitMb: 1 });
    const ok = await byFile([['Guide.md', '# guide']], { doc_language: 'English' });
    expect(ok.status).toBe(200);
    expect(ok.body.document).toMatchObject({ name: 'Guide.md', data_source_detail_dict: { upload_file: { name: 'Guide.md', size: 7, extension: 'md' } } });
    const none = await call(url, 'POST', `${base}/document/create-by-file`, { key: apiKey, form: filesForm([], { data: '{}' }) });
    expect([none.status, none.body.code]).toEqual([400, 'no_file_uploaded']);
    const two = await byFile([['a.md', 'x'], ['b.md', 'y']]);
    expect([two.status, two.body.code]).toEqual([400, 'too_many_files']);
    const exe = await byFile([['tool.exe', 'x']]);
    expect([exe.status, exe.body.code]).toEqual([415, 'unsupported_file_type']);
    const big = await byFile([['big.md', Buffer.alloc(1024 * 1024 + 1, 97)]]);
    expect([big.status, big.body.code]).toEqual([413, 'file_too_large']);
    expect(fake.documents().map((d) => d.name)).toEqual(['Guide.md']);
  });

  it('create-by-file on a fresh knowledge base needs indexing_technique and process_rule', async () => {
    const { byFile } = await setup({}, { fresh: true });
    expect((await byFile([['a.md', 'x']])).body.message).toBe('indexing_technique is required.');
    expect((await byFile([['a.md', 'x']], { indexing_technique: 'economy' })).body.message).toBe('process_rule is required.');
    expect((await byFile([['a.md', 'x']], { indexing_technique: 'economy', process_rule: { mode: 'automatic' } })).status).toBe(200);
  });
});

describe('DifyFake: same-name behaviour', () => {
  it('a create with the name of an enabled document re-indexes that document in place: same id, new content, new batch', async () => {
    const { byText, byFile, fake, complete } = await setup();
    const first = await byText('Page.md', 'v1');
    complete();
    const second = await byText('Page.md', 'v2');
    expect(second.body.document.id).toBe(first.body.document.id);
    expect(second.body.batch).not.toBe(first.body.batch);
    expect(second.body.document.indexing_status).toBe('waiting');
    const viaFile = await byFile([['Page.md', 'v3']]);
    expect(viaFile.body.document.id).toBe(first.body.document.id);
    expect(fake.documents()).toHaveLength(1);
    expect(fake.documents()[0]?.content.toString()).toBe('v3');
    expect(fake.writes).toMatchObject({ uploads: 3, updates: 0 });
    expect(fake.writeLog.map((w) => w.op)).toEqual(['create', 'upsert', 'upsert']);
    // Names differing in case are different documents.
    expect((await byText('page.md', 'x')).body.document.id).not.toBe(first.body.document.id);
  });

  it('disabled or archived documents are not matched (a duplicate is created); "duplicate": false in data is honoured', async () => {
    const { byText, byFile, url, apiKey, base, fake, complete } = await setup();
    const a = (await byText('A.md', '1')).body.document.id as string;
    complete();
    await call(url, 'PATCH', `${base}/documents/status/disable`, { key: apiKey, json: { document_ids: [a] } });
    const again = await byText('A.md', '2');
    expect(again.body.document.id).not.toBe(a);
    expect(fake.findDocuments({ name: 'A.md' })).toHaveLength(2);
    const b = (await byFile([['B.md', '1']])).body.document.id as string;
    const noDup = await byFile([['B.md', '2']], { duplicate: false });
    expect(noDup.body.document.id).not.toBe(b);
  });

  it('Dify ≤ 0.9 created duplicates through the API', async () => {
    const { byText, fake } = await setup({ version: '0.9.1' });
    await byText('Page.md', 'v1');
    await byText('Page.md', 'v2');
    expect(fake.findDocuments({ name: 'Page.md' })).toHaveLength(2);
  });
});

describe('DifyFake: indexing status', () => {
  it('a batch walks waiting → parsing → cleaning → splitting → indexing → completed; display_status follows', async () => {
    const { byText, url, apiKey, base, fake } = await setup();
    const created = await byText('a.md', 'hello '.repeat(300));
    const batch = created.body.batch as string;
    const seen: string[] = [];
    for (let step = 0; step <= 5; step += 1) {
      const r = await call(url, 'GET', `${base}/documents/${batch}/indexing-status`, { key: apiKey });
      expect(r.status).toBe(200);
      seen.push(r.body.data[0].indexing_status);
      fake.advanceTime(200);
    }
    expect(seen).toEqual(['waiting', 'parsing', 'cleaning', 'splitting', 'indexing', 'completed']);
    const done = (await call(url, 'GET', `${base}/documents/${batch}/indexing-status`, { key: apiKey })).body.data[0];
    expect(done).toMatchObject({ id: created.body.document.id, error: null });
    expect(done.completed_at).toEqual(expect.any(Number));
    expect(done.completed_segments).toBe(done.total_segments);
    expect(fake.document(created.body.document.id)?.status).toBe('available');
    const none = await call(url, 'GET', `${base}/documents/20990101000000123456/indexing-status`, { key: apiKey });
    expect([none.status, none.body.code]).toEqual([404, 'not_found']);
  });

  it('a failing run ends in error; a hanging one stays queuing; pause shows paused', async () => {
    const { byText, url, apiKey, base, fake } = await setup();
    fake.failParse({ name: 'bad.md', message: 'embedding provider down' });
    fake.hangParse({ name: 'stuck.md' });
    const bad = await byText('bad.md', 'x');
    const stuck = await byText('stuck.md', 'y');
    const paused = await byText('paused.md', 'z');
    fake.advanceTime(300);
    fake.pauseIndexing(paused.body.document.id);
    fake.advanceTime(10_000);
    const status = async (batch: string) => (await call(url, 'GET', `${base}/documents/${batch}/indexing-status`, { key: apiKey })).body.data[0];
    expect(await status(bad.body.batch)).toMatchObject({ indexing_status: 'error', error: 'embedding provider down' });
    expect((await status(bad.body.batch)).stopped_at).toEqual(expect.any(Number));
    expect((await status(stuck.body.batch)).indexing_status).toBe('waiting');
    expect((await status(paused.body.batch)).indexing_status).toBe('paused');
    expect(fake.documents().map((d) => [d.name, d.status])).toEqual([
      ['bad.md', 'error'],
      ['stuck.md', 'queuing'],
      ['paused.md', 'paused'],
    ]);
    fake.resumeIndexing(paused.body.document.id);
    fake.advanceTime(1_000);
    expect(fake.document(paused.body.document.id)?.status).toBe('available');
  });
});

describe('DifyFake: update rules', () => {
  it('update-by-text only when available: 400 "Document is not available" while indexing; afterwards re-indexed under the original batch', async () => {
    const { byText, url, apiKey, base, fake, complete } = await setup();
    const created = await byText('a.md', 'v1');
    const id = created.body.document.id as string;
    const update = (json: unknown, alias = false) =>
      call(url, 'POST', `${base}/documents/${id}/${alias ? 'update_by_text' : 'update-by-text'}`, { key: apiKey, json });
    const busy = await update({ name: 'a.md', text: 'v2' });
    expect([busy.status, busy.body]).toEqual([400, { code: 'invalid_param', message: 'Document is not available', status: 400 }]);
    complete();
    expect((await update({ text: 'v2' })).status).toBe(400);
    const ok = await update({ name: 'a.md', text: 'v2' });
    expect(ok.status).toBe(200);
    expect(ok.body.batch).toBe(created.body.batch);
    expect(ok.body.document).toMatchObject({ id, indexing_status: 'waiting', display_status: 'queuing' });
    expect(fake.document(id)?.content.toString()).toBe('v2');
    complete();
    expect((await update({ name: 'renamed.md', text: 'v3' }, true)).status).toBe(200);
    expect(fake.document(id)?.name).toBe('renamed.md');
    expect(fake.writes.updates).toBe(2);
    const missing = await call(url, 'POST', `${base}/documents/00000000-0000-4000-8000-000000000000/update-by-text`, { key: apiKey, json: { name: 'x', text: 'y' } });
    expect([missing.status, missing.body.code]).toEqual([404, 'not_found']);
  });

  it('error, disabled and archived documents cannot be updated', async () => {
    const { byText, url, apiKey, base, fake, complete } = await setup();
    fake.failParse({ name: 'err.md' });
    const err = (await byText('err.md', 'x')).body.document.id as string;
    const dis = (await byText('dis.md', 'x')).body.document.id as string;
    const arc = (await byText('arc.md', 'x')).body.document.id as string;
    complete();
    await call(url, 'PATCH', `${base}/documents/status/disable`, { key: apiKey, json: { document_ids: [dis] } });
    await call(url, 'PATCH', `${base}/documents/status/archive`, { key: apiKey, json: { document_ids: [arc] } });
    expect(fake.documents().map((d) => d.status)).toEqual(['error', 'disabled', 'archived']);
    for (const id of [err, dis, arc]) {
      const r = await call(url, 'POST', `${base}/documents/${id}/update-by-text`, { key: apiKey, json: { name: 'n.md', text: 't' } });
      expect([r.status, r.body.message]).toEqual([400, 'Document is not available']);
    }
  });

  it('file updates: POST update-by-file (and update_by_file), PATCH /documents/{id} from 1.16; PATCH is a 405 on older servers', async () => {
    const { byText, url, apiKey, base, fake, complete } = await setup();
    const id = (await byText('a.md', 'v1')).body.document.id as string;
    complete();
    const post = await call(url, 'POST', `${base}/documents/${id}/update-by-file`, { key: apiKey, form: filesForm([['a.md', 'v2']]) });
    expect(post.status).toBe(200);
    expect(fake.document(id)?.content.toString()).toBe('v2');
    complete();
    const patch = await call(url, 'PATCH', `${base}/documents/${id}`, { key: apiKey, form: filesForm([['b.md', 'v3']], { data: '{}' }) });
    expect(patch.status).toBe(200);
    expect(patch.body.document.name).toBe('b.md');
    const busy = await call(url, 'POST', `${base}/documents/${id}/update_by_file`, { key: apiKey, form: filesForm([['b.md', 'v4']]) });
    expect([busy.status, busy.body.message]).toEqual([400, 'Document is not available']);

    const old = await setup({ version: '1.10.0' });
    const oid = (await old.byText('a.md', 'v1')).body.document.id as string;
    old.complete();
    const r = await call(old.url, 'PATCH', `${old.base}/documents/${oid}`, { key: old.apiKey, form: filesForm([['a.md', 'v2']]) });
    expect([r.status, r.body.code]).toEqual([405, 'method_not_allowed']);
  });
});

describe('DifyFake: delete', () => {
  it('204 with an empty body; 404 when missing; 400 document_indexing during indexing; a queued (hung) one can go; archived is 403', async () => {
    const { byText, url, apiKey, base, fake, complete } = await setup();
    fake.hangParse({ name: 'queued.md' });
    const a = (await byText('a.md', 'x')).body.document.id as string;
    const queued = (await byText('queued.md', 'x')).body.document.id as string;
    fake.advanceTime(300);
    const during = await call(url, 'DELETE', `${base}/documents/${a}`, { key: apiKey });
    expect([during.status, during.body]).toEqual([400, { code: 'document_indexing', message: 'Cannot delete document during indexing.', status: 400 }]);
    expect((await call(url, 'DELETE', `${base}/documents/${queued}`, { key: apiKey })).status).toBe(204);
    complete();
    const ok = await call(url, 'DELETE', `${base}/documents/${a}`, { key: apiKey });
    expect([ok.status, ok.text]).toEqual([204, '']);
    const gone = await call(url, 'DELETE', `${base}/documents/${a}`, { key: apiKey });
    expect([gone.status, gone.body.code]).toEqual([404, 'not_found']);
    const arc = (await byText('arc.md', 'x')).body.document.id as string;
    complete();
    await call(url, 'PATCH', `${base}/documents/status/archive`, { key: apiKey, json: { document_ids: [arc] } });
    const immutable = await call(url, 'DELETE', `${base}/documents/${arc}`, { key: apiKey });
    expect([immutable.status, immutable.body.code]).toEqual([403, 'archived_document_immutable']);
    expect(fake.writes.deletes).toBe(2);
  });

  it('older answers: 200 {"result":"success"} or 200 with a body of 204', async () => {
    for (const [deleteAnswer, text] of [['result', '{"result":"success"}'], ['body-204', '204']] as const) {
      const { byText, url, apiKey, base, complete } = await setup({ deleteAnswer });
      const id = (await byText('a.md', 'x')).body.document.id as string;
      complete();
      const r = await call(url, 'DELETE', `${base}/documents/${id}`, { key: apiKey });
      expect([r.status, r.text]).toEqual([200, text]);
    }
  });
});

describe('DifyFake: list and get', () => {
  it('limit is capped at 100 while limit and has_more follow the requested value; page through with total', async () => {
    const { byText, url, apiKey, base } = await setup();
    for (let i = 0; i < 150; i += 1) await byText(`p${String(i).padStart(3, '0')}.md`, 'x');
    const big = await call(url, 'GET', `${base}/documents?limit=200`, { key: apiKey });
    expect(big.body.data).toHaveLength(100);
    expect(big.body).toMatchObject({ has_more: false, limit: 200, total: 150, page: 1 });
    const p1 = await call(url, 'GET', `${base}/documents?limit=100&page=1`, { key: apiKey });
    expect(p1.body).toMatchObject({ has_more: true, limit: 100, total: 150 });
    const p2 = await call(url, 'GET', `${base}/documents?limit=100&page=2`, { key: apiKey });
    expect(p2.body).toMatchObject({ has_more: false, total: 150 });
    expect(p2.body.data).toHaveLength(50);
    const ids = new Set([...p1.body.data, ...p2.body.data].map((d: { id: string }) => d.id));
    expect(ids.size).toBe(150);
    // Default limit 20, newest first.
    const dflt = await call(url, 'GET', `${base}/documents`, { key: apiKey });
    expect(dflt.body.limit).toBe(20);
    expect(dflt.body.data[0].name).toBe('p149.md');
    expect(dflt.body.data[0]).not.toHaveProperty('updated_at');
    expect((await call(url, 'GET', `${base}/documents?limit=abc`, { key: apiKey })).body).toMatchObject({ code: 'invalid_param', params: 'limit' });
  });

  it('keyword is LIKE %kw%: case-sensitive, `_` a wildcard; status filters by display status', async () => {
    const { byText, url, apiKey, base, fake, complete } = await setup();
    await byText('Alpha_1.md', 'x');
    await byText('alpha-2.md', 'x');
    complete();
    fake.hangParse({ name: 'late.md' });
    await byText('late.md', 'x');
    const names = async (q: string) => (await call(url, 'GET', `${base}/documents?${q}`, { key: apiKey })).body.data.map((d: { name: string }) => d.name).sort();
    expect(await names('keyword=Alpha')).toEqual(['Alpha_1.md']);
    expect(await names('keyword=lpha_')).toEqual(['Alpha_1.md', 'alpha-2.md']);
    expect(await names('status=available')).toEqual(['Alpha_1.md', 'alpha-2.md']);
    expect(await names('status=queuing')).toEqual(['late.md']);
  });

  it('get document: details with updated_at; metadata=only / without', async () => {
    const { byText, url, apiKey, base, complete } = await setup();
    const id = (await byText('a.md', 'hello')).body.document.id as string;
    complete();
    const full = await call(url, 'GET', `${base}/documents/${id}`, { key: apiKey });
    expect(full.body).toMatchObject({ id, name: 'a.md', display_status: 'available', segment_count: 1, doc_metadata: [] });
    expect(full.body.updated_at).toEqual(expect.any(Number));
    expect(full.body.completed_at).toEqual(expect.any(Number));
    const only = await call(url, 'GET', `${base}/documents/${id}?metadata=only`, { key: apiKey });
    expect(Object.keys(only.body).sort()).toEqual(['doc_metadata', 'doc_type', 'id']);
    const without = await call(url, 'GET', `${base}/documents/${id}?metadata=without`, { key: apiKey });
    expect(without.body).not.toHaveProperty('doc_metadata');
    expect((await call(url, 'GET', `${base}/documents/${id}?metadata=bad`, { key: apiKey })).status).toBe(400);
  });
});

describe('DifyFake: enable, disable, archive', () => {
  it('status actions answer {result:"success"}; disabling a document still indexing is 400 invalid_action', async () => {
    const { byText, url, apiKey, base, fake, complete } = await setup();
    const id = (await byText('a.md', 'x')).body.document.id as string;
    const path = (action: string) => `${base}/documents/status/${action}`;
    const early = await call(url, 'PATCH', path('disable'), { key: apiKey, json: { document_ids: [id] } });
    expect([early.status, early.body.code]).toEqual([400, 'invalid_action']);
    complete();
    for (const [action, status] of [['disable', 'disabled'], ['enable', 'available'], ['archive', 'archived'], ['un_archive', 'available']] as const) {
      const r = await call(url, 'PATCH', path(action), { key: apiKey, json: { document_ids: [id] } });
      expect([action, r.status, r.body]).toEqual([action, 200, { result: 'success' }]);
      expect(fake.document(id)?.status).toBe(status);
    }
    expect((await call(url, 'PATCH', path('explode'), { key: apiKey, json: { document_ids: [id] } })).status).toBe(404);
  });
});

describe('DifyFake: metadata (1.1.0+)', () => {
  it('create a field (201), list with counts, set values by name (replace or partial), built-in fields', async () => {
    const { byText, url, apiKey, base, fake } = await setup();
    const id = (await byText('a.md', 'x')).body.document.id as string;
    const field = await call(url, 'POST', `${base}/metadata`, { key: apiKey, json: { type: 'string', name: 'lark_token' } });
    expect(field.status).toBe(201);
    expect(field.body).toEqual({ id: expect.any(String), name: 'lark_token', type: 'string' });
    const dup = await call(url, 'POST', `${base}/metadata`, { key: apiKey, json: { type: 'string', name: 'lark_token' } });
    expect([dup.status, dup.body.code]).toEqual([400, 'invalid_param']);
    await call(url, 'POST', `${base}/metadata`, { key: apiKey, json: { type: 'number', name: 'rev' } });
    const set = (list: Array<{ name: string; value: unknown }>, partial = false) =>
      call(url, 'POST', `${base}/documents/metadata`, {
        key: apiKey,
        json: { operation_data: [{ document_id: id, metadata_list: list.map((m) => ({ id: field.body.id, ...m })), partial_update: partial }] },
      });
    expect((await set([{ name: 'lark_token', value: 'doxA' }, { name: 'rev', value: 3 }])).body).toEqual({ result: 'success' });
    expect(fake.document(id)?.metadata).toEqual({ lark_token: 'doxA', rev: 3 });
    await set([{ name: 'rev', value: 4 }], true);
    expect(fake.document(id)?.metadata).toEqual({ lark_token: 'doxA', rev: 4 });
    await set([{ name: 'rev', value: 5 }]);
    expect(fake.document(id)?.metadata).toEqual({ rev: 5 });
    const listed = await call(url, 'GET', `${base}/metadata`, { key: apiKey });
    expect(listed.body).toEqual({
      doc_metadata: [
        { id: field.body.id, name: 'lark_token', type: 'string', count: 0 },
        { id: expect.any(String), name: 'rev', type: 'number', count: 1 },
      ],
      built_in_field_enabled: false,
    });
    await call(url, 'POST', `${base}/metadata/built-in/enable`, { key: apiKey });
    await set([{ name: 'lark_token', value: 'doxB' }]);
    expect(fake.document(id)?.metadata).toMatchObject({ lark_token: 'doxB', document_name: 'a.md', source: 'file_upload' });
    const got = await call(url, 'GET', `${base}/documents/${id}`, { key: apiKey });
    expect(got.body.doc_metadata).toEqual(expect.arrayContaining([{ id: field.body.id, name: 'lark_token', type: 'string', value: 'doxB' }]));
    fake.lockMetadata(id);
    expect((await set([{ name: 'lark_token', value: 'doxC' }])).status).toBe(400);
  });

  it('before 1.1.0 the metadata routes do not exist', async () => {
    const { url, apiKey, base } = await setup({ version: '1.0.1' });
    const r = await call(url, 'POST', `${base}/metadata`, { key: apiKey, json: { type: 'string', name: 'x' } });
    expect([r.status, r.body.code]).toEqual([404, 'not_found']);
  });
});

describe('DifyFake: Cloud rate limit', () => {
  it('write calls above the per-minute limit answer 403 forbidden with the rate-limit message, not 429', async () => {
    const { byText, fake } = await setup({ cloudRateLimitPerMinute: 2 });
    expect((await byText('a.md', 'x')).status).toBe(200);
    expect((await byText('b.md', 'x')).status).toBe(200);
    const limited = await byText('c.md', 'x');
    expect([limited.status, limited.body.code]).toEqual([403, 'forbidden']);
    expect(limited.body.message).toMatch(/knowledge base request rate limit/);
    fake.advanceTime(61_000);
    expect((await byText('c.md', 'x')).status).toBe(200);
  });
});
