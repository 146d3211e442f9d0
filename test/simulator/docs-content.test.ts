import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockType, DOCS_CONTENT_APIS, EMBED_HEADINGS, type DocsTenant, type SimBlock } from '../../simulator/data/docs/index.js';
import { startDataClient, type DataClient } from './data-client.js';
import { allBlocks, blockText, caller, stripMarkdown, type BlocksPage, type Call } from './docs-client.js';

// Document content over raw HTTP against shared/lark/docs-content.md §5.1-5.3 and corrections.md:
// Markdown (docs/v1/content), raw text and blocks of the same document agree; blocks page 500 at a
// time; embedded sheets and Bases are headings in Markdown; the 10 MB limit; only docx is served;
// refusals; edits in revisions, times and content; call counters.

const TENANT = 'tk-sim-docs-content';
const CONTENT = '/open-apis/docs/v1/content';
const DOCX = '/open-apis/docx/v1/documents';

describe('simulator document content: Markdown, raw text, blocks', () => {
  let client: DataClient;
  let call: Call;
  let token: string;
  let docs: DocsTenant;
  const nameOf = (openId: string) => client.sim.oauth.users.find(TENANT, openId)?.name ?? openId;

  beforeAll(async () => {
    client = await startDataClient([TENANT], { enforceRateLimits: false });
    docs = client.data.docs(TENANT, { wikiDocuments: 40, largePages: 1, oversizePages: 1, archiveDocuments: 5 });
    call = caller(client.sim);
    token = await client.tenantToken(TENANT);
  });
  afterAll(async () => {
    await client.stop();
  });

  const markdown = (doc: string, query = '&doc_type=docx&content_type=markdown') => call<{ content: string }>(token, 'GET', `${CONTENT}?doc_token=${doc}${query}`);
  const raw = (doc: string) => call<{ content: string }>(token, 'GET', `${DOCX}/${doc}/raw_content`);

  it('Markdown, raw text and blocks of one document agree', async () => {
    const doc = docs.refs.drive.docx;
    const { blocks, pages } = await allBlocks(call, token, doc);
    expect(pages).toBe(1);
    const page = blocks[0]!;
    expect([page.block_id, page.block_type, page.parent_id]).toEqual([doc, BlockType.page, '']);
    const byId = new Map(blocks.map((b) => [b.block_id, b]));
    expect(byId.size).toBe(blocks.length);
    for (const b of blocks.slice(1)) expect(byId.get(b.parent_id)?.children).toContain(b.block_id);
    for (const b of blocks) for (const c of b.children ?? []) expect(byId.get(c)?.parent_id).toBe(b.block_id);
    const types = new Set(blocks.map((b) => b.block_type));
    for (const t of [1, 2, 3, 12, 13, 14, 15, 18, 19, 22, 27, 30, 31, 32]) expect(types).toContain(t);
    const table = blocks.find((b) => b.block_type === BlockType.table)!;
    expect((table.table as { cells: string[] }).cells).toEqual(table.children);
    expect((blocks.find((b) => b.block_type === BlockType.bitable)!.bitable as { token: string }).token).toMatch(/^bascn\w+_tbl\w+$/);

    const texts = blocks.map((b) => blockText(b, nameOf)).filter((t): t is string => t !== undefined);
    expect(texts[0]).toBe('Team handbook');
    // Raw text: the title and every text-bearing block, one per line, in order.
    const rawText = (await raw(doc)).body.data!.content;
    expect(rawText).toBe(`${texts.join('\n')}\n`);
    // Markdown: the same words in the same order, with markup around them.
    const md = (await markdown(doc)).body.data!.content;
    expect(md.startsWith('# Team handbook\n')).toBe(true);
    const plain = stripMarkdown(md);
    let at = 0;
    for (const t of texts) {
      for (const line of t.split('\n')) {
        const found = plain.indexOf(line, at);
        expect(found, `"${line}" after ${at}`).toBeGreaterThanOrEqual(at);
        at = found + line.length;
      }
    }
    // Embedded objects are headings without their data; tables break cells with <br>.
    expect(md).toContain(`\n${EMBED_HEADINGS.sheet}\n`);
    expect(md).toContain(`\n${EMBED_HEADINGS.bitable}\n`);
    expect(md).toMatch(/\| --- \| --- \|/);
    expect(md).toContain('<br>second line');
    expect(md).toMatch(/\n```(typescript|python|sql|bash)\n/);

    const document = (await call<{ document: Record<string, unknown> }>(token, 'GET', `${DOCX}/${doc}`)).body.data!.document;
    expect(document).toMatchObject({ document_id: doc, revision_id: 1, title: 'Team handbook' });
    const one = await call<{ block: SimBlock }>(token, 'GET', `${DOCX}/${doc}/blocks/${table.block_id}`);
    expect(one.body.data!.block).toEqual(table);
    const children = await call<BlocksPage>(token, 'GET', `${DOCX}/${doc}/blocks/${table.block_id}/children?page_size=2`);
    expect(children.body.data!.items.map((b) => b.block_id)).toEqual(table.children!.slice(0, 2));
    expect(children.body.data!.has_more).toBe(true);
    expect((await call(token, 'GET', `${DOCX}/${doc}/blocks/doxcnNoSuchBlock`)).body.code).toBe(1770002);
  });

  it('pages blocks 500 at a time by default and at most 500', async () => {
    const doc = docs.refs.largeDocs[0]!;
    const first = (await call<BlocksPage>(token, 'GET', `${DOCX}/${doc}/blocks`)).body.data!;
    expect(first.items).toHaveLength(500);
    expect(first.has_more).toBe(true);
    const { blocks, pages } = await allBlocks(call, token, doc, 'page_size=500');
    expect(pages).toBeGreaterThan(4);
    expect(new Set(blocks.map((b) => b.block_id)).size).toBe(blocks.length);
    expect(blocks.slice(0, 500)).toEqual(first.items);
    const big = await call(token, 'GET', `${DOCX}/${doc}/blocks?page_size=501`);
    expect([big.status, big.body.code]).toEqual([400, 1770001]);
    expect((await call(token, 'GET', `${DOCX}/${doc}/blocks?page_token=nope`)).body.code).toBe(1770022);
    // About 1.5 MB of Markdown is served.
    const md = (await markdown(doc)).body;
    expect(md.code).toBe(0);
    expect(md.data!.content.length).toBeGreaterThan(1_000_000);
  });

  it('refuses Markdown over 10 MB with 2889925 while blocks still serve the document', async () => {
    const doc = docs.refs.oversizeDocs[0]!;
    const res = await markdown(doc);
    expect([res.status, res.body.code]).toEqual([400, 2889925]);
    const first = (await call<BlocksPage>(token, 'GET', `${DOCX}/${doc}/blocks`)).body;
    expect(first.code).toBe(0);
    expect(first.data!.items).toHaveLength(500);
  });

  it('serves only docx: legacy docs, sheets and wiki node tokens are not found; parameters are checked', async () => {
    for (const t of [docs.refs.drive.doc, docs.refs.drive.sheet, docs.refs.wikiDoc.node]) {
      const res = await markdown(t);
      expect([res.status, res.body.code]).toEqual([404, 2889914]);
      const blocks = await call(token, 'GET', `${DOCX}/${t}/blocks`);
      expect([blocks.status, blocks.body.code]).toEqual([404, 1770002]);
    }
    // A wiki-hosted docx is read by its document token.
    expect((await markdown(docs.refs.wikiDoc.document)).body.code).toBe(0);
    expect((await markdown(docs.refs.drive.docx, '&doc_type=doc')).body.code).toBe(2889904);
    expect((await markdown(docs.refs.drive.docx, '&content_type=html')).body.code).toBe(2889904);
    expect((await markdown(docs.refs.drive.docx, '&lang=fr')).body.code).toBe(2889904);
    expect((await markdown(docs.refs.drive.docx, '')).body.code).toBe(0);
    expect((await call(token, 'GET', CONTENT)).body.code).toBe(2889904);
    expect((await call(token, 'GET', `${DOCX}/${docs.refs.drive.docx}/raw_content?lang=7`)).body.code).toBe(1770001);
  });

  it('refuses documents not shared with the app and answers the deleted codes for trashed ones', async () => {
    const hidden = await markdown(docs.refs.privateDoc);
    expect([hidden.status, hidden.body.code]).toEqual([403, 2889902]);
    for (const path of [`${DOCX}/${docs.refs.privateDoc}/blocks`, `${DOCX}/${docs.refs.privateDoc}/raw_content`, `${DOCX}/${docs.refs.privateDoc}`]) {
      const res = await call(token, 'GET', path);
      expect([res.status, res.body.code]).toEqual([403, 1770032]);
    }
    const doc = docs.addDocument({ in: { folder: docs.refs.teamFolder }, paragraphs: ['Soon gone.'] });
    docs.delete(doc.token);
    const trashed = await markdown(doc.token);
    expect([trashed.status, trashed.body.code]).toEqual([403, 2889906]);
    expect((await call(token, 'GET', `${DOCX}/${doc.token}/blocks`)).body.code).toBe(1770003);
    docs.delete(doc.token, { permanent: true });
    expect((await markdown(doc.token)).body.code).toBe(2889914);
  });

  it('shows edits in the revision, the edit time and the content; older revisions need edit rights', async () => {
    const doc = docs.addDocument({ title: 'Plan', in: { folder: docs.refs.teamFolder }, paragraphs: ['First paragraph.'] });
    const revision = async () => (await call<{ document: { revision_id: number; title: string } }>(token, 'GET', `${DOCX}/${doc.token}`)).body.data!.document;
    expect((await markdown(doc.token)).body.data!.content).toBe('# Plan\n\nFirst paragraph.\n');
    const editedBefore = doc.edited;
    const t0 = Math.floor(Date.now() / 1000);
    docs.edit(doc.token, { append: 'Zebra paragraph.' });
    const t1 = Math.floor(Date.now() / 1000);
    expect(await revision()).toMatchObject({ revision_id: 2, title: 'Plan' });
    // Whole seconds, as Lark gives them: an edit in the second of the last one keeps its edit time.
    expect(doc.edited).toBeGreaterThanOrEqual(Math.max(editedBefore, t0));
    expect(doc.edited).toBeLessThanOrEqual(Math.max(editedBefore, t1));
    expect((await markdown(doc.token)).body.data!.content).toBe('# Plan\n\nFirst paragraph.\n\nZebra paragraph.\n');
    expect((await raw(doc.token)).body.data!.content).toBe('Plan\nFirst paragraph.\nZebra paragraph.\n');
    const { blocks } = await allBlocks(call, token, doc.token);
    expect(blocks.map((b) => blockText(b, nameOf))).toEqual(['Plan', 'First paragraph.', 'Zebra paragraph.']);

    docs.edit(doc.token, { replace: ['Only this.'], title: 'Plan v2' });
    expect(await revision()).toMatchObject({ revision_id: 3, title: 'Plan v2' });
    expect((await raw(doc.token)).body.data!.content).toBe('Plan v2\nOnly this.\n');

    // The app is not the owner: an older revision is refused; the latest by number is fine.
    const old = await call(token, 'GET', `${DOCX}/${doc.token}/blocks?document_revision_id=1`);
    expect([old.status, old.body.code]).toEqual([403, 1770032]);
    expect((await call(token, 'GET', `${DOCX}/${doc.token}/blocks?document_revision_id=3`)).body.code).toBe(0);
    expect((await call(token, 'GET', `${DOCX}/${doc.token}/blocks?document_revision_id=9`)).body.code).toBe(1770001);
    const own = docs.addDocument({ title: 'Mine', in: { root: 'app:*' }, paragraphs: ['v1 text'] });
    docs.edit(own.token, { append: 'v2 text' });
    const v1 = (await call<BlocksPage>(token, 'GET', `${DOCX}/${own.token}/blocks?document_revision_id=1`)).body.data!.items;
    expect(v1.map((b) => blockText(b, nameOf))).toEqual(['Mine', 'v1 text']);
  });

  it('counts calls per API: listings and metas make no content calls', async () => {
    docs.resetCalls();
    await call(token, 'GET', `/open-apis/drive/v1/files?folder_token=${docs.refs.teamFolder}`);
    await call(token, 'POST', '/open-apis/drive/v1/metas/batch_query', { request_docs: [{ doc_token: docs.refs.drive.docx, doc_type: 'docx' }] });
    await call(token, 'GET', `/open-apis/wiki/v2/spaces/${docs.refs.space}/nodes`);
    expect(docs.count(DOCS_CONTENT_APIS)).toBe(0);
    expect(client.data.docsCalls(DOCS_CONTENT_APIS)).toBe(0);
    expect(docs.count()).toBe(3);
    await markdown(docs.refs.drive.docx);
    await markdown(docs.refs.privateDoc);
    expect(docs.count('docs.content')).toBe(2);
    expect(docs.count('docs.content', { code: 0 })).toBe(1);
    expect(docs.count('docs.content', { target: docs.refs.privateDoc, code: 2889902 })).toBe(1);
    expect(docs.calls.at(-1)).toMatchObject({ api: 'docs.content', principal: 'app:cli_sim_data_test', status: 403, code: 2889902 });
  });
});
