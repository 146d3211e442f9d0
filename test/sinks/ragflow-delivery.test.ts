import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RagflowFake } from '../../simulator/kb/index.js';
import { SETTLE_MS } from '../../src/connectors/docs/edit-second.js';
import { deleteDoc, differences, drain, larkToken, seedTenant, sinkFixture, startRagflow, writeDoc, type DocInput, type Expected, type Fixture } from './sink-fixture.js';

// Delivery into RAGFlow across its API versions (../shared/kb/ragflow-dify.md §1): every change of
// a Lark page (new, edited, renamed, moved out of the synced paths, deleted) reaches the dataset
// as exactly one document, by id; versions up to v0.24 delete the whole dataset on an empty id
// list, and a document the test put there itself must survive every delivery.

const VERSIONS = ['0.13.0', '0.17.0', '0.22.0', '0.24.0', '0.25.0', '0.25.1', '0.26.0', '0.27.0'];

let fx: Fixture;
beforeAll(async () => {
  fx = await sinkFixture();
});
afterAll(async () => {
  await fx.stop();
});

/** Uploads a document of someone else's into the dataset, straight through the API. */
async function foreignDocument(url: string, apiKey: string, datasetId: string): Promise<string> {
  const form = new FormData();
  form.append('file', new Blob(['hand-made notes']), 'handbook.md');
  const res = await fetch(`${url}/api/v1/datasets/${datasetId}/documents`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: form });
  const body = (await res.json()) as { data: Array<{ id: string }> };
  return body.data[0]!.id;
}

describe.each(VERSIONS)('RAGFlow v%s', (version) => {
  let fake: RagflowFake;
  const tenant = `tk-ragflow-${version.replace(/\./g, '')}`;
  const docs = new Map<string, DocInput>();
  let foreign: string;
  let ragflow: Awaited<ReturnType<typeof startRagflow>>;

  beforeAll(async () => {
    ragflow = await startRagflow({ version });
    fake = ragflow.fake;
    await seedTenant(fx.db.db, tenant, ['kb']);
    foreign = await foreignDocument(ragflow.url, ragflow.apiKey, ragflow.datasetId);
    const put = await fx.sinks.put(tenant, 'kb', { type: 'ragflow', url: ragflow.url, apiKey: ragflow.apiKey, datasetId: ragflow.datasetId });
    expect(put.created).toBe(true);
  });
  afterAll(async () => {
    await fake.stop();
  });

  /** Calls per changed page, printed for the newest version (the report's figures). */
  const measure = (what: string, pages: number) => {
    if (version === VERSIONS.at(-1)) console.log(`RAGFlow v${version} ${what}: ${(fake.count() / pages).toFixed(1)} calls per page ${JSON.stringify(fake.countsByRoute())}`);
  };
  const expected = (): Expected[] => [...docs.values()].map((d) => ({ token: d.token, title: d.title, body: Buffer.from(d.markdown ?? '') }));
  const check = async () => {
    await drain(fx, tenant, 'kb');
    const diff = differences(fake.documents(ragflow.datasetId), expected(), { metadata: fake.at('0.17.0'), others: [foreign] });
    expect(diff).toEqual([]);
    // Nothing but larksync's own documents was ever deleted, and the foreign one is still there.
    expect(fake.document(foreign)).toBeDefined();
    expect(fake.writeLog.filter((w) => w.op === 'delete' && w.documentId === foreign)).toEqual([]);
    for (const d of fake.documents(ragflow.datasetId).filter((x) => x.id !== foreign)) expect(d.status).toBe('DONE');
  };

  it('delivers new pages, each once, parsed, with lark_token metadata', async () => {
    for (let i = 0; i < 5; i += 1) {
      const d = { token: larkToken(), title: `Page ${i} ${version}`, markdown: `# Page ${i}\n\ntext ${i}` };
      docs.set(d.token, d);
      await writeDoc(fx.db.db, tenant, d);
    }
    fake.resetCounts();
    await check();
    expect(fake.writes.uploads).toBe(5);
    measure('new pages (with the first listing)', 5);
    const perDoc = fake.count() / 5;
    // upload, metadata, parse, a poll or two, list of the full dataset at creation
    expect(perDoc).toBeLessThanOrEqual(8);
    const states = await fx.sinks.documents(tenant, 'kb', { limit: 100 });
    expect(states.documents).toHaveLength(5);
    for (const s of states.documents) {
      expect(s.status).toBe('done');
      expect(s.pushedHash).toBe(s.bodyHash);
      expect(s.sinkStatus).toBe('DONE');
      expect(fake.document(s.sinkDocumentId!)?.name).toBe(s.sinkDocumentName);
    }
  });

  it('an unchanged page is not sent again; an edit replaces the document (new id, old one deleted after DONE, name kept)', async () => {
    const [first] = [...docs.values()];
    const before = (await fx.sinks.documents(tenant, 'kb', { limit: 100 })).documents.find((s) => s.larkToken === first!.token)!;
    fake.resetCounts();
    await writeDoc(fx.db.db, tenant, first!); // same content: no feed entry
    await drain(fx, tenant, 'kb');
    expect(fake.writes).toMatchObject({ uploads: 0, deletes: 0, updates: 0 });

    first!.markdown = `${first!.markdown}\n\nedited`;
    await writeDoc(fx.db.db, tenant, first!);
    await check();
    const after = (await fx.sinks.documents(tenant, 'kb', { limit: 100 })).documents.find((s) => s.larkToken === first!.token)!;
    expect(after.sinkDocumentId).not.toBe(before.sinkDocumentId);
    expect(after.sinkDocumentName).toBe(before.sinkDocumentName);
    expect(fake.document(before.sinkDocumentId!)).toBeUndefined();
    expect(fake.writes.uploads).toBe(1);
    expect(fake.writes.deletes).toBe(1);
    measure('an edit', 1);
  });

  it('a rename renames the document in place; a move updates its lark_path', async () => {
    const [, second, third] = [...docs.values()];
    const before = (await fx.sinks.documents(tenant, 'kb', { limit: 100 })).documents.find((s) => s.larkToken === second!.token)!;
    second!.title = `Renamed ${version}`;
    third!.path = `/moved/${third!.title}`;
    await writeDoc(fx.db.db, tenant, second!);
    await writeDoc(fx.db.db, tenant, third!);
    fake.resetCounts();
    await check();
    const after = (await fx.sinks.documents(tenant, 'kb', { limit: 100 })).documents.find((s) => s.larkToken === second!.token)!;
    expect(after.sinkDocumentId).toBe(before.sinkDocumentId);
    expect(after.sinkDocumentName).toMatch(/^Renamed /);
    expect(fake.writes.uploads).toBe(0);
    measure('a rename and a move', 2);
    if (fake.at('0.17.0')) {
      const moved = fake.findDocuments({ datasetId: ragflow.datasetId, metadata: { lark_token: third!.token } })[0]!;
      expect(moved.metadata.lark_path).toBe(`/moved/${third!.title}`);
    }
  });

  it('a page moved out of the synced paths, and a deleted one, leave the dataset; the foreign document stays', async () => {
    const [, , third, fourth] = [...docs.values()];
    await deleteDoc(fx.db.db, tenant, third!.token);
    await deleteDoc(fx.db.db, tenant, fourth!.token);
    docs.delete(third!.token);
    docs.delete(fourth!.token);
    fake.resetCounts();
    await check();
    expect(fake.writes.deletes).toBe(2);
    measure('deletions', 2);
    const states = await fx.sinks.documents(tenant, 'kb', { status: 'deleted', limit: 100 });
    expect(states.documents.map((s) => s.larkToken).sort()).toEqual([third!.token, fourth!.token].sort());
    expect(states.documents.every((s) => s.sinkDocumentId === null)).toBe(true);
  });

  it('a page deleted and restored comes back as one document; edits while parsing end with the last version only', async () => {
    const [first] = [...docs.values()];
    await deleteDoc(fx.db.db, tenant, first!.token);
    await drain(fx, tenant, 'kb');
    await writeDoc(fx.db.db, tenant, first!);
    docs.set(first!.token, first!);
    // Slow parses: two edits land while the first upload is still parsing.
    fake.setOptions({ parseMs: 300 });
    await fx.sinks.delivery.run(tenant, 'kb');
    first!.markdown = `${first!.markdown}\nsecond`;
    await writeDoc(fx.db.db, tenant, first!);
    await fx.sinks.delivery.run(tenant, 'kb');
    first!.markdown = `${first!.markdown}\nthird`;
    await writeDoc(fx.db.db, tenant, first!);
    await check();
    fake.setOptions({ parseMs: 30 });
  });
});

describe('after a database restore', () => {
  it('reconcile rebuilds a stale mapping from lark_token metadata: no page uploaded twice, stray copies deleted', async () => {
    const r = await startRagflow({ version: '0.27.0' });
    const tenant = 'tk-ragflow-restore';
    const db = fx.db.db;
    try {
      await seedTenant(db, tenant, ['kb']);
      const pages = [0, 1, 2, 3].map((i) => ({ token: larkToken(), title: `Restored ${i}`, markdown: `restored ${i}` }));
      for (const p of pages) await writeDoc(db, tenant, p);
      await fx.sinks.put(tenant, 'kb', { type: 'ragflow', url: r.url, apiKey: r.apiKey, datasetId: r.datasetId });
      await drain(fx, tenant, 'kb');
      // The backup: larksync's tables as they are now.
      const backup = async (table: string, where: string) => sql.raw(`create table bak_${table} as select * from ${table} where ${where}`).execute(db);
      await backup('sinks', `tenant_key = '${tenant}'`);
      await backup('sink_documents', `tenant_key = '${tenant}'`);
      await backup('docs_content', `tenant_key = '${tenant}'`);

      // Life goes on: page 0 edited, page 1 deleted, page 2 renamed, page 4 new.
      const [p0, p1, p2, p3] = pages;
      p0!.markdown = 'edited after the backup';
      p2!.title = 'Renamed after the backup';
      const p4 = { token: larkToken(), title: 'New after the backup', markdown: 'new' };
      await writeDoc(db, tenant, p0!);
      await deleteDoc(db, tenant, p1!.token);
      await writeDoc(db, tenant, p2!);
      await writeDoc(db, tenant, p4);
      await drain(fx, tenant, 'kb');
      // Someone also uploads a copy of page 3 by hand, with its metadata.
      const form = new FormData();
      form.append('file', new Blob([p3!.markdown]), `Restored 3 (${p3!.token.slice(-10)}).md`);
      const up = (await (await fetch(`${r.url}/api/v1/datasets/${r.datasetId}/documents`, { method: 'POST', headers: { authorization: `Bearer ${r.apiKey}` }, body: form })).json()) as { data: Array<{ id: string }> };
      await fetch(`${r.url}/api/v1/datasets/${r.datasetId}/documents/${up.data[0]!.id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${r.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ meta_fields: { lark_token: p3!.token } }),
      });

      // The restore: every table back to the backup; the sink has moved on.
      for (const table of ['sinks', 'sink_documents', 'docs_content']) {
        await sql.raw(`delete from ${table} where tenant_key = '${tenant}'`).execute(db);
        await sql.raw(`insert into ${table} select * from bak_${table}`).execute(db);
        await sql.raw(`drop table bak_${table}`).execute(db);
      }
      // The next Lark sync brings docs_content up to date again.
      await writeDoc(db, tenant, p0!);
      await deleteDoc(db, tenant, p1!.token);
      await writeDoc(db, tenant, p2!);
      await writeDoc(db, tenant, p4);

      r.fake.resetCounts();
      await fx.sinks.reconcile(tenant, 'kb');
      await drain(fx, tenant, 'kb');
      const live = [p0!, p2!, p3!, p4].map((p) => ({ token: p.token, title: p.title, body: Buffer.from(p.markdown) }));
      expect(differences(r.fake.documents(r.datasetId), live)).toEqual([]);
      // Nothing was uploaded again: each page's sink document was found by its lark_token.
      expect(r.fake.writes.uploads).toBe(0);
      expect(r.fake.writes.deletes).toBe(1);
      const states = await fx.sinks.documents(tenant, 'kb', { limit: 100 });
      expect(states.documents.filter((s) => s.status === 'done')).toHaveLength(4);
      expect(states.documents.find((s) => s.larkToken === p1!.token)?.status).toBe('deleted');
    } finally {
      await r.fake.stop();
    }
  });
});

describe('a Drive file edited twice within one second', () => {
  it('is downloaded only after that second (and the clock margin), so the second upload is the one delivered', async () => {
    // Lark stamps edits in whole seconds and a file has no revision: a download within the edit's
    // second could get the first of two uploads of that second, and no later listing would show
    // the second one as newer (same modified_time, same body hash). So delivery waits.
    const downloads: Array<{ at: number; bytes: Buffer }> = [];
    let current = Buffer.from('%PDF first upload of the second');
    const fixture = await sinkFixture({
      download: async () => {
        downloads.push({ at: Date.now(), bytes: current });
        return { bytes: current, mime: 'application/pdf' };
      },
    });
    const ragflow = await startRagflow({ version: '0.26.0' });
    try {
      const tenant = 'tk-file-same-second';
      await seedTenant(fixture.db.db, tenant, ['kb']);
      await fixture.sinks.put(tenant, 'kb', { type: 'ragflow', url: ragflow.url, apiKey: ragflow.apiKey, datasetId: ragflow.datasetId });
      // The edit's second is the next one, so the delivery below surely starts inside it.
      const stamp = Math.floor(Date.now() / 1000) + 1;
      const token = larkToken('boxcn');
      await writeDoc(fixture.db.db, tenant, {
        token,
        title: 'Price list.pdf',
        file: { name: 'Price list.pdf', mime: 'application/pdf', size: current.length, token },
        fileVersion: `file:${token}:${stamp}`,
        editedTime: new Date(stamp * 1000),
      });
      // The second upload of that second, made while the delivery is under way.
      const second = setTimeout(() => {
        current = Buffer.from('%PDF second upload of the same second');
      }, stamp * 1000 + 500 - Date.now());
      const started = Date.now();
      await drain(fixture, tenant, 'kb');
      clearTimeout(second);
      expect(started).toBeLessThan(stamp * 1000 + 500);
      expect(downloads.length).toBe(1);
      expect(downloads[0]!.at).toBeGreaterThanOrEqual(stamp * 1000 + SETTLE_MS);
      const docs = ragflow.fake.documents(ragflow.datasetId);
      expect(docs.map((d) => d.content.toString())).toEqual(['%PDF second upload of the same second']);

      // A file edited long ago is downloaded at once.
      const old = larkToken('boxcn');
      await writeDoc(fixture.db.db, tenant, {
        token: old,
        title: 'Old.pdf',
        file: { name: 'Old.pdf', mime: 'application/pdf', size: current.length, token: old },
        editedTime: new Date(Date.now() - 3_600_000),
      });
      const t0 = Date.now();
      await drain(fixture, tenant, 'kb');
      expect(downloads.length).toBe(2);
      expect(downloads[1]!.at - t0).toBeLessThan(SETTLE_MS);
    } finally {
      await ragflow.fake.stop();
      await fixture.stop();
    }
  });
});
