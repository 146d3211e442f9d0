import { afterEach, describe, expect, it } from 'vitest';
import { DifyFake, RagflowFake, type KbFakeBase } from '../../simulator/kb/index.js';
import { call, filesForm, networkError } from './kb-http.js';

// Fault and time controls shared by both fakes (simulator/kb/common.ts): one-off faults before
// or after the work, seeded random faults, a sink that is down (refused / 503), latency, stalls,
// parse rules by rate, and the counters and inspection tests assert on.

const running: KbFakeBase[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((f) => f.stop()));
});

async function ragflow(opts: ConstructorParameters<typeof RagflowFake>[0] = {}) {
  const fake = new RagflowFake({ parseMs: 1_000, ...opts });
  running.push(fake);
  const url = await fake.start();
  const { apiKey } = fake.addOwner();
  const ds = fake.addDataset(apiKey, { name: 'wiki' });
  const docs = `/api/v1/datasets/${ds.id}/documents`;
  const upload = (name: string, content = 'x') => call(url, 'POST', docs, { key: apiKey, form: filesForm([[name, content]]) });
  const list = () => call(url, 'GET', docs, { key: apiKey });
  return { fake, url, apiKey, ds, docs, upload, list };
}

async function dify(opts: ConstructorParameters<typeof DifyFake>[0] = {}) {
  const fake = new DifyFake({ indexMs: 1_000, ...opts });
  running.push(fake);
  const url = await fake.start();
  const { apiKey } = fake.addOwner();
  const ds = fake.addDataset(apiKey, { name: 'wiki', indexingTechnique: 'economy', docForm: 'text_model', processRule: { mode: 'automatic' } });
  const base = `/v1/datasets/${ds.id}`;
  const create = (name: string, text = 'x') => call(url, 'POST', `${base}/document/create-by-text`, { key: apiKey, json: { name, text } });
  return { fake, url, apiKey, ds, base, create };
}

describe('kb fakes: one-off faults', () => {
  it('a fault before the work: the proxy 503 page, nothing stored; the next call goes through', async () => {
    const { fake, upload } = await ragflow();
    fake.injectFault({ route: 'documents.upload', kind: 'unavailable' });
    const r = await upload('a.md');
    expect(r.status).toBe(503);
    expect(r.headers.get('content-type')).toMatch(/text\/html/);
    expect(r.text).toMatch(/503 Service Temporarily Unavailable/);
    expect(fake.documents()).toEqual([]);
    expect((await upload('a.md')).body.code).toBe(0);
    expect(fake.count('documents.upload')).toBe(2);
    expect(fake.count('documents.upload', { status: 503 })).toBe(1);
    expect(fake.calls[0]).toMatchObject({ route: 'documents.upload', status: 503, fault: 'unavailable' });
  });

  it('a fault after the work: RAGFlow stored the document, so the blind retry makes a(1).md — two documents for one Lark page', async () => {
    const { fake, upload } = await ragflow();
    fake.injectFault({ route: 'documents.upload', kind: 'unavailable', when: 'after' });
    expect((await upload('a.md')).status).toBe(503);
    const retry = await upload('a.md');
    expect(retry.body.data[0].name).toBe('a(1).md');
    expect(fake.documents().map((d) => d.name).sort()).toEqual(['a(1).md', 'a.md']);
    expect(fake.writes.uploads).toBe(2);
  });

  it('a fault after the work: Dify re-indexes the same-name document, so the retry keeps one document', async () => {
    const { fake, create } = await dify();
    fake.injectFault({ route: 'documents.createByText', kind: 'error', when: 'after' });
    const lost = await create('a.md', 'v1');
    expect([lost.status, lost.body.code]).toEqual([500, 'internal_server_error']);
    const retry = await create('a.md', 'v1');
    expect(retry.status).toBe(200);
    expect(fake.documents()).toHaveLength(1);
    expect(fake.writeLog.map((w) => w.op)).toEqual(['create', 'upsert']);
  });

  it('product-specific error kinds: RAGFlow code 100 over HTTP 200; Dify 429 too_many_requests and the Cloud 403', async () => {
    const rf = await ragflow();
    rf.fake.injectFault({ kind: 'error', route: 'documents.list' });
    const e = await rf.list();
    expect([e.status, e.body.code]).toEqual([200, 100]);
    expect(rf.fake.count('documents.list', { code: 100 })).toBe(1);
    const df = await dify();
    df.fake.injectFault({ kind: 'rate_limited', count: 1 });
    df.fake.injectFault({ kind: 'cloud_rate_limit', count: 1 });
    const a = await df.create('a.md');
    const b = await df.create('a.md');
    expect([a.status, a.body]).toEqual([429, { code: 'too_many_requests', message: 'Too many requests. Please try again later.', status: 429 }]);
    expect([b.status, b.body.code]).toEqual([403, 'forbidden']);
    expect(df.fake.documents()).toEqual([]);
  });

  it('a reset connection before the work stores nothing; after the work the document exists though the client saw an error', async () => {
    const { fake, upload } = await ragflow();
    fake.injectFault({ route: 'documents.upload', kind: 'reset' });
    expect(await networkError(upload('a.md'))).not.toBe('no error');
    expect(fake.documents()).toEqual([]);
    fake.injectFault({ route: 'documents.upload', kind: 'reset', when: 'after' });
    expect(await networkError(upload('b.md'))).not.toBe('no error');
    expect(fake.documents().map((d) => d.name)).toEqual(['b.md']);
    expect(fake.count('documents.upload', { status: 0 })).toBe(2);
  });

  it('a stalled call never answers: the client times out', async () => {
    const { fake, url, docs, apiKey, list } = await ragflow();
    fake.injectFault({ route: 'documents.list', kind: 'stall' });
    const started = performance.now();
    expect(await networkError(call(url, 'GET', docs, { key: apiKey, signal: AbortSignal.timeout(200) }))).not.toBe('no error');
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect((await list()).body.code).toBe(0);
  });

  it('custom faults and delays', async () => {
    const { fake, create } = await dify();
    fake.injectFault({ kind: 'custom', status: 502, body: 'upstream', delayMs: 50 });
    const started = performance.now();
    const r = await create('a.md');
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect([r.status, r.text]).toEqual([502, 'upstream']);
  });
});

describe('kb fakes: a sink that is down', () => {
  it('refused: connections fail with ECONNREFUSED until up(); stored documents survive', async () => {
    const { fake, upload, list } = await ragflow();
    await upload('a.md');
    await fake.down({ mode: 'refused' });
    // The first call may meet the pooled socket being closed; the next one finds no listener.
    await networkError(list());
    expect(await networkError(list())).toBe('ECONNREFUSED');
    expect(fake.isDown()).toBe(true);
    await fake.up();
    expect((await list()).body.data.total).toBe(1);
  });

  it('refused for a while comes back by itself', async () => {
    const { fake, create } = await dify();
    await fake.down({ mode: 'refused', forMs: 1_000 });
    await networkError(create('a.md'));
    expect(await networkError(create('a.md'))).toBe('ECONNREFUSED');
    await new Promise((r) => setTimeout(r, 1_300));
    expect((await create('a.md')).status).toBe(200);
  });

  it('unavailable: every call meets the 503 page for forMs of the fake clock', async () => {
    const frozen = Date.now();
    const { fake, create } = await dify({ clock: () => frozen });
    await fake.down({ mode: 'unavailable', forMs: 30_000 });
    expect((await create('a.md')).status).toBe(503);
    fake.advanceTime(29_000);
    expect((await create('a.md')).status).toBe(503);
    fake.advanceTime(1_000);
    expect((await create('a.md')).status).toBe(200);
    expect(fake.count(undefined, { status: 503 })).toBe(2);
    expect(fake.calls.filter((c) => c.fault === 'down')).toHaveLength(2);
  });
});

describe('kb fakes: seeded random faults and latency', () => {
  it('5 % faults from a seed: the same seed gives the same failing calls; the rate is about right', async () => {
    const outcomes: number[][] = [];
    for (let run = 0; run < 2; run += 1) {
      const { fake, list } = await ragflow();
      fake.randomFaults({ seed: 1234, rate: 0.05, kinds: ['unavailable', 'error'] });
      const statuses: number[] = [];
      for (let i = 0; i < 200; i += 1) {
        const r = await list();
        statuses.push(r.status === 503 ? 503 : r.body.code);
      }
      outcomes.push(statuses);
      fake.stopRandomFaults();
      expect((await list()).body.code).toBe(0);
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
    const failures = outcomes[0]?.filter((s) => s !== 0).length ?? 0;
    expect(failures).toBeGreaterThanOrEqual(3);
    expect(failures).toBeLessThanOrEqual(25);
  });

  it('random faults limited to routes, mixed before/after', async () => {
    const { fake, create, url, apiKey, base } = await dify();
    fake.randomFaults({ seed: 7, rate: 1, routes: ['documents.createByText'], kinds: ['unavailable'], when: 'mixed' });
    const results = [];
    for (let i = 0; i < 20; i += 1) results.push((await create(`p${i}.md`)).status);
    expect(new Set(results)).toEqual(new Set([503]));
    // The 'after' ones stored their document although the caller saw a 503.
    expect(fake.documents().length).toBeGreaterThan(0);
    expect(fake.documents().length).toBeLessThan(20);
    expect((await call(url, 'GET', `${base}/documents`, { key: apiKey })).status).toBe(200);
  });

  it('latency per call, globally or per route', async () => {
    const { fake, upload, list } = await ragflow({ latencyMs: 40 });
    let t = performance.now();
    await list();
    expect(performance.now() - t).toBeGreaterThanOrEqual(35);
    fake.setLatency(0);
    fake.setLatency(400, 'documents.upload');
    t = performance.now();
    await list();
    expect(performance.now() - t).toBeLessThan(350);
    t = performance.now();
    await upload('a.md');
    expect(performance.now() - t).toBeGreaterThanOrEqual(390);
  });
});

describe('kb fakes: parse rules, counters, inspection', () => {
  it('a hang rate from the seeded generator hangs some parses and not others; finishParse ends one', async () => {
    const frozen = Date.now();
    const { fake, url, apiKey, ds, upload } = await ragflow({ clock: () => frozen, seed: 99 });
    fake.hangParse({ rate: 0.5 });
    const ids: string[] = [];
    for (let i = 0; i < 20; i += 1) ids.push((await upload(`p${i}.md`)).body.data[0].id);
    for (const id of ids) await call(url, 'POST', `/api/v1/datasets/${ds.id}/chunks`, { key: apiKey, json: { document_ids: [id] } });
    fake.advanceTime(60_000);
    const stuck = fake.documents().filter((d) => d.status === 'RUNNING');
    expect(stuck.length).toBeGreaterThan(2);
    expect(stuck.length).toBeLessThan(18);
    fake.finishParse(stuck[0]?.id ?? '');
    expect(fake.document(stuck[0]?.id ?? '')?.status).toBe('DONE');
  });

  it('counters by route and of writes; resetCounts; "exactly one document per Lark document" by metadata', async () => {
    const { fake, url, apiKey, docs, upload } = await ragflow();
    const a = (await upload('a.md', 'alpha')).body.data[0].id as string;
    const b = (await upload('b.md', 'beta')).body.data[0].id as string;
    await call(url, 'PATCH', `${docs}/${a}`, { key: apiKey, json: { meta_fields: { lark_token: 'doxA' } } });
    await call(url, 'PATCH', `${docs}/${b}`, { key: apiKey, json: { meta_fields: { lark_token: 'doxB' }, name: 'b2.md' } });
    await call(url, 'DELETE', docs, { key: apiKey, json: { ids: [b] } });
    expect(fake.countsByRoute()).toEqual({ 'documents.upload': 2, 'documents.update': 2, 'documents.delete': 1 });
    expect(fake.writes).toEqual({ uploads: 2, updates: 3, deletes: 1, parses: 0, stops: 0 });
    expect(fake.writeLog.map((w) => w.op)).toEqual(['create', 'create', 'metadata', 'rename', 'metadata', 'delete']);
    for (const token of ['doxA']) expect(fake.findDocuments({ metadata: { lark_token: token } })).toHaveLength(1);
    expect(fake.findDocuments({ metadata: { lark_token: 'doxB' } })).toHaveLength(0);
    const view = fake.documents()[0];
    expect(view).toMatchObject({ name: 'a.md', metadata: { lark_token: 'doxA' }, status: 'UNSTART', enabled: true, size: 5 });
    expect(view?.content.toString()).toBe('alpha');
    fake.resetCounts();
    expect(fake.count()).toBe(0);
    expect(fake.writes.uploads).toBe(0);
  });

  it('Dify inspection: name, content bytes, metadata, display status, batch', async () => {
    const frozen = Date.now();
    const { fake, create } = await dify({ clock: () => frozen });
    const r = await create('页面.md', '内容');
    fake.advanceTime(1_000);
    const [doc] = fake.documents();
    expect(doc).toMatchObject({ id: r.body.document.id, name: '页面.md', status: 'available', indexingStatus: 'completed', batch: r.body.batch, metadata: {} });
    expect(doc?.content.equals(Buffer.from('内容'))).toBe(true);
    expect(fake.count('documents.createByText', { status: 200 })).toBe(1);
  });
});
