import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DifyFake, DifyOptions } from '../../simulator/kb/index.js';
import { waitFor } from '../helpers/wait.js';
import { deleteDoc, differences, drain, larkToken, seedTenant, sinkFixture, startDify, writeDoc, type DocInput, type Expected, type Fixture } from './sink-fixture.js';

// Delivery into Dify's Knowledge Service API (../shared/kb/ragflow-dify.md §2): create by text,
// update in place only while `available`, delete and re-create otherwise, lark_token metadata
// (1.1.0+), every delete answer style, lists paged with limit ≤ 100; each Lark page one document.

const SERVERS: Array<[string, DifyOptions]> = [
  ['1.16 (204 delete, PATCH file update)', { version: '1.16.0' }],
  ['1.4 (delete answers {"result":"success"})', { version: '1.4.0', deleteAnswer: 'result' }],
  ['1.0 (no metadata API, delete body 204)', { version: '1.0.0', deleteAnswer: 'body-204' }],
];

let fx: Fixture;
beforeAll(async () => {
  fx = await sinkFixture();
});
afterAll(async () => {
  await fx.stop();
});

describe.each(SERVERS)('Dify %s', (label, options) => {
  let fake: DifyFake;
  let dify: Awaited<ReturnType<typeof startDify>>;
  const tenant = `tk-dify-${label.slice(0, 4).replace(/\W/g, '')}`;
  const docs = new Map<string, DocInput>();

  beforeAll(async () => {
    dify = await startDify(options);
    fake = dify.fake;
    await seedTenant(fx.db.db, tenant, ['kb']);
    await fx.sinks.put(tenant, 'kb', { type: 'dify', url: dify.url, apiKey: dify.apiKey, datasetId: dify.datasetId });
  });
  afterAll(async () => {
    await fake.stop();
  });

  const measure = (what: string, pages: number) => {
    if (label.startsWith('1.16')) console.log(`Dify ${label.slice(0, 4)} ${what}: ${(fake.count() / pages).toFixed(1)} calls per page ${JSON.stringify(fake.countsByRoute())}`);
  };
  const expected = (): Expected[] => [...docs.values()].map((d) => ({ token: d.token, title: d.title, body: Buffer.from(d.markdown ?? '') }));
  const check = async () => {
    await drain(fx, tenant, 'kb');
    expect(differences(fake.documents(dify.datasetId), expected(), { metadata: fake.at('1.1.0') })).toEqual([]);
    // A rename goes through update-by-text, which makes Dify index the document again
    // (ragflow-dify.md: both update routes reset indexing); larksync does not wait for that
    // re-index of an unchanged body, so the renamed document may still be indexing here. Every
    // document must end available (none in error).
    await waitFor(() => fake.documents(dify.datasetId).every((d) => d.status === 'available') || undefined, 10_000, 'Dify to finish indexing');
    for (const d of fake.documents(dify.datasetId)) expect(d.status).toBe('available');
  };
  const state = async (token: string) => (await fx.sinks.documents(tenant, 'kb', { limit: 1000 })).documents.find((s) => s.larkToken === token)!;

  it('creates each new page by text, with larksync metadata fields made once', async () => {
    for (let i = 0; i < 6; i += 1) {
      const d = { token: larkToken('wikcn'), title: `Dify page ${i}`, markdown: `# Page ${i}\n\nbody ${i}` };
      docs.set(d.token, d);
      await writeDoc(fx.db.db, tenant, d);
    }
    fake.resetCounts();
    await check();
    expect(fake.writes.uploads).toBe(6);
    measure('new pages (with the first listing and metadata fields)', 6);
    expect(fake.count('documents.createByText')).toBe(6);
    if (fake.at('1.1.0')) {
      expect(fake.metadataFields(dify.datasetId).map((f) => f.name).sort()).toEqual(['lark_hash', 'lark_path', 'lark_token', 'lark_url']);
      expect(fake.count('metadata.create')).toBe(4);
    }
    for (const s of (await fx.sinks.documents(tenant, 'kb', { limit: 100 })).documents) {
      expect(s).toMatchObject({ status: 'done', sinkStatus: 'completed' });
      expect(s.pushedHash).toBe(s.bodyHash);
    }
  });

  it('an edit updates the document in place by text (same id); a rename keeps the id', async () => {
    const [a, b] = [...docs.values()];
    const idA = (await state(a!.token)).sinkDocumentId;
    const idB = (await state(b!.token)).sinkDocumentId;
    a!.markdown = `${a!.markdown}\n\nedited`;
    b!.title = 'Dify renamed';
    await writeDoc(fx.db.db, tenant, a!);
    await writeDoc(fx.db.db, tenant, b!);
    fake.resetCounts();
    await check();
    expect((await state(a!.token)).sinkDocumentId).toBe(idA);
    expect((await state(b!.token)).sinkDocumentId).toBe(idB);
    expect(fake.document(idB!)!.name).toMatch(/^Dify renamed \(/);
    expect(fake.writes.uploads).toBe(0);
    expect(fake.writes.deletes).toBe(0);
    measure('an edit and a rename', 2);
  });

  it('a document that failed indexing is deleted and created again; one still indexing is waited for', async () => {
    const [, , c, d] = [...docs.values()];
    const idC = (await state(c!.token)).sinkDocumentId!;
    // c: make its stored document end in error, so Dify refuses an update ("not available").
    fake.failParse({ documentId: idC, times: 1 });
    c!.markdown = `${c!.markdown}\nv2`;
    await writeDoc(fx.db.db, tenant, c!);
    await drain(fx, tenant, 'kb');
    // Its re-index failed: a restart deletes and creates it again.
    expect(fake.document(idC)).toBeUndefined();
    // d: slow indexing; two edits in a row.
    fake.setOptions({ indexMs: 300 });
    d!.markdown = `${d!.markdown}\nv2`;
    await writeDoc(fx.db.db, tenant, d!);
    await fx.sinks.delivery.run(tenant, 'kb');
    d!.markdown = `${d!.markdown}\nv3`;
    await writeDoc(fx.db.db, tenant, d!);
    await check();
    fake.setOptions({ indexMs: 30 });
  });

  it('a deleted page, and one moved out of the synced paths, are deleted from the knowledge base', async () => {
    const [, , , , e, f] = [...docs.values()];
    await deleteDoc(fx.db.db, tenant, e!.token);
    await deleteDoc(fx.db.db, tenant, f!.token);
    docs.delete(e!.token);
    docs.delete(f!.token);
    fake.resetCounts();
    await check();
    expect(fake.writes.deletes).toBe(2);
    measure('deletions', 2);
    expect((await state(e!.token)).status).toBe('deleted');
  });

  it('a page deleted while Dify indexes it waits for the indexing (400 document_indexing), then goes', async () => {
    const g = { token: larkToken('wikcn'), title: 'Short lived', markdown: 'soon gone' };
    // Indexing stops moving in the `cleaning` stage, where Dify refuses deletes.
    fake.hangParse({ name: /Short lived/, hangAt: 0.5 });
    await writeDoc(fx.db.db, tenant, g);
    // The worker, in the background: jobs one after another.
    const running = drain(fx, tenant, 'kb');
    await waitFor(async () => (await state(g.token))?.sinkDocumentId, 10_000, 'the create');
    const id = (await state(g.token)).sinkDocumentId!;
    await waitFor(() => fake.document(id)?.indexingStatus === 'cleaning', 5_000, 'cleaning');
    await deleteDoc(fx.db.db, tenant, g.token);
    await waitFor(() => fake.count('documents.delete', { status: 400 }) > 0, 10_000, 'a refused delete');
    expect(fake.document(id)).toBeDefined();
    fake.clearParseRules();
    fake.finishIndexing(id);
    await running;
    await check();
    expect(fake.document(id)).toBeUndefined();
    expect((await state(g.token)).status).toBe('deleted');
  });
});

describe('Dify: many pages and a stuck index', () => {
  it('pages its listings with limit 100 (has_more is wrong above it) when a 150-document dataset is rebuilt', { timeout: 90_000 }, async () => {
    const dify = await startDify();
    const tenant = 'tk-dify-many';
    try {
      await seedTenant(fx.db.db, tenant, ['big']);
      const docs: Expected[] = [];
      for (let i = 0; i < 150; i += 1) {
        const d = { token: larkToken('wikcn'), title: `Bulk ${i}`, markdown: `bulk ${i}` };
        docs.push({ token: d.token, title: d.title, body: Buffer.from(d.markdown) });
        await writeDoc(fx.db.db, tenant, d);
      }
      await fx.sinks.put(tenant, 'big', { type: 'dify', url: dify.url, apiKey: dify.apiKey, datasetId: dify.datasetId });
      let t0 = Date.now();
      const jobs = await drain(fx, tenant, 'big', 60_000);
      console.log(`Dify 150 pages, first delivery: ${Date.now() - t0} ms in ${jobs} jobs ${JSON.stringify(dify.fake.countsByRoute())}`);
      t0 = Date.now();
      expect(differences(dify.fake.documents(dify.datasetId), docs)).toEqual([]);
      // Forget the mapping and rebuild it from a full listing: nothing is uploaded again.
      await fx.db.db.deleteFrom('sink_documents').where('tenant_key', '=', tenant).execute();
      await fx.sinks.reconcile(tenant, 'big');
      dify.fake.resetCounts();
      await drain(fx, tenant, 'big', 60_000);
      console.log(`Dify 150 pages, mapping rebuilt from a listing: ${Date.now() - t0} ms ${JSON.stringify(dify.fake.countsByRoute())}`);
      expect(dify.fake.writes.uploads).toBe(0);
      expect(dify.fake.count('documents.list')).toBe(2);
      expect(differences(dify.fake.documents(dify.datasetId), docs)).toEqual([]);
      const listed = await fx.sinks.documents(tenant, 'big', { status: 'done', limit: 1000 });
      expect(listed.documents).toHaveLength(150);
      expect(dify.fake.count('metadata.set')).toBe(0);
    } finally {
      await dify.fake.stop();
    }
  });

  it('an index stuck in "indexing" is given up on after bounded restarts: failed, with the reason', async () => {
    const dify = await startDify();
    const tenant = 'tk-dify-stuck';
    try {
      await seedTenant(fx.db.db, tenant, ['kb']);
      const d = { token: larkToken('wikcn'), title: 'Never indexed', markdown: 'stuck' };
      // Hangs in the `waiting` stage (Dify lets it be deleted there), every run.
      dify.fake.hangParse({ name: /Never indexed/ });
      await writeDoc(fx.db.db, tenant, d);
      await fx.sinks.put(tenant, 'kb', { type: 'dify', url: dify.url, apiKey: dify.apiKey, datasetId: dify.datasetId });
      await drain(fx, tenant, 'kb', 30_000);
      const s = (await fx.sinks.documents(tenant, 'kb', { limit: 10 })).documents[0]!;
      expect(s.status).toBe('failed');
      expect(s.restarts).toBe(2);
      expect(s.lastError).toMatch(/longer than/);
      // One document stays (the last attempt), never more.
      expect(dify.fake.documents(dify.datasetId)).toHaveLength(1);
      expect(dify.fake.writes.uploads).toBe(3);
      // The next change tries again.
      dify.fake.clearParseRules();
      d.markdown = 'unstuck';
      await writeDoc(fx.db.db, tenant, d);
      await drain(fx, tenant, 'kb');
      expect(differences(dify.fake.documents(dify.datasetId), [{ token: d.token, title: d.title, body: Buffer.from('unstuck') }])).toEqual([]);
    } finally {
      await dify.fake.stop();
    }
  });
});
