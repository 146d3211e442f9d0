import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTLE_MS } from '../../src/connectors/docs/edit-second.js';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { callCounter, configureDocs, live, records, runDocs } from './docs-helpers.js';

const TENANT = 'tenant-docs-inc';
const BIG = 'tenant-docs-oversize';

describe('docs module: incremental runs, moves, deletions, large documents', () => {
  let stack: Stack;
  let data: DocsTenant;

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    // Polling is what this file tests; docs change events (test/events-in/docs) would re-read edits between runs.
    stack.sim.events.pause();
    data = stack.data.docs(TENANT, { wikiDocuments: 60, wikiDepth: 4, largePages: 1, oversizePages: 0, teamFolders: 3, driveDepth: 2, driveDocuments: 10, archiveDocuments: 210, personalDocuments: 1 });
    stack.data.docs(BIG, { wikiDocuments: 12, wikiDepth: 3, largePages: 0, oversizePages: 1, teamFolders: 1, driveDepth: 1, driveDocuments: 2, archiveDocuments: 2 });
    for (const t of [TENANT, BIG]) await openTenant(stack, t);
    await configureDocs(stack, TENANT, {
      sources: [{ wikiSpaceId: data.refs.space }, { url: `https://${TENANT}.feishu.cn/drive/folder/${data.refs.teamFolder}` }, { url: `https://${TENANT}.feishu.cn/docx/${data.refs.personal[data.refs.owners[0]!]![0]}` }],
    });
    data.share(data.refs.personal[data.refs.owners[0]!]![0]!, 'app:*');
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  const content = () => records(stack, TENANT, 'docs_content');

  it('a second run without changes makes no content call and at most one metas call per 200 documents', async () => {
    const first = await runDocs(stack, TENANT);
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    const docs = live(await content()).length;
    expect(docs).toBeGreaterThan(250);

    const calls = callCounter(data);
    const before = await content();
    const second = await runDocs(stack, TENANT);
    expect(second.status).toBe('succeeded');
    expect(calls.content()).toBe(0);
    expect(calls.count('docx.document.get')).toBe(0);
    expect(calls.count('drive.metas.batch_query')).toBeLessThanOrEqual(Math.ceil(docs / 200));
    // Nothing rewritten either: the rows stand as they were.
    const after = await content();
    for (const [key, row] of before) expect(after.get(key)?.updatedAt).toBe(row.updatedAt);
    console.log(`docs no-change run over ${docs} documents: ${JSON.stringify(calls.byApi())}`);
  });

  it('an edit refetches that document only', async () => {
    const doc = data.refs.wikiDoc.document;
    data.edit(doc, { append: 'A paragraph added by the test.' });
    const folderDoc = data.refs.drive.docx;
    data.edit(folderDoc, { append: 'Drive edit.' });
    const calls = callCounter(data);
    const run = await runDocs(stack, TENANT);
    expect(run.status).toBe('succeeded');
    expect(calls.content()).toBe(2);
    expect(calls.count('docs.content', doc)).toBe(1);
    expect(calls.count('docs.content', folderDoc)).toBe(1);
    const rows = await content();
    expect(rows.get(doc)?.data.markdown).toContain('A paragraph added by the test.');
    expect(rows.get(doc)?.data.revision).toBe(data.object(doc)!.revision);
    expect(rows.get(folderDoc)?.data.markdown).toContain('Drive edit.');
  });

  it('a second edit in the second of the last read is read: the revision is checked where equal edit times prove nothing', async () => {
    const doc = data.refs.wikiDoc.document;
    const unsettled = async () =>
      (await sql<{ u: boolean }>`select raw ? 'unsettled' as u from docs_content where tenant_key = ${TENANT} and record_key = ${doc}`.execute(stack.db.db)).rows[0]?.u;
    // Lark stamps edits in whole seconds; this one a second ahead of our clock, so that the run's
    // read surely falls within the edit's second, whatever this machine's timing.
    const stamp = Math.floor(Date.now() / 1000) + 1;
    data.edit(doc, { append: 'First edit of the second.' }).edited = stamp;
    expect((await runDocs(stack, TENANT)).status).toBe('succeeded');
    expect((await content()).get(doc)?.data.markdown).toContain('First edit of the second.');
    expect(await unsettled()).toBe(true);

    // Another edit within that second: the same edit time, only the revision moved.
    data.edit(doc, { append: 'Second edit of the same second.' }).edited = stamp;
    let calls = callCounter(data);
    const second = await runDocs(stack, TENANT);
    expect(second.status).toBe('succeeded');
    const row = (await content()).get(doc);
    if (typeof row?.data.markdown !== 'string') {
      // Seen once in CI (the row without its Markdown); what the database and the run said then.
      const stored = await sql`select record_key, deleted_at, change_xid::text, change_seq::text, raw - 'node' as raw, length(markdown) as chars from docs_content where tenant_key = ${TENANT} and record_key = ${doc}`.execute(stack.db.db);
      console.log(`docs second-edit diagnostics: served ${JSON.stringify(row)}; stored ${JSON.stringify(stored.rows)}; run ${JSON.stringify(second)}; calls ${JSON.stringify(calls.byApi())}`);
    }
    expect(row?.data.markdown).toContain('Second edit of the same second.');
    expect(calls.content(doc)).toBe(1);
    expect(calls.content()).toBe(1);
    // The check, then the body's own revision read.
    expect(calls.count('docx.document.get', doc)).toBe(2);

    // Past the second (and the margin for Lark's clock), the check finds the same revision: the row
    // is settled without a body read, and later runs neither check nor read it.
    await new Promise((r) => setTimeout(r, Math.max(0, stamp * 1000 + SETTLE_MS - Date.now())));
    calls = callCounter(data);
    expect((await runDocs(stack, TENANT)).status).toBe('succeeded');
    expect(calls.content()).toBe(0);
    expect(calls.count('docx.document.get', doc)).toBe(1);
    expect(await unsettled()).toBe(false);
    expect((await content()).get(doc)?.data.markdown).toContain('Second edit of the same second.');
    calls = callCounter(data);
    expect((await runDocs(stack, TENANT)).status).toBe('succeeded');
    expect(calls.count('docx.document.get')).toBe(0);
    expect(calls.content()).toBe(0);
  });

  it('a rename above a document and a move change its path without a content call', async () => {
    // Renaming a folder, and a wiki page with children, changes the paths below them; moving a node changes its own.
    const subfolder = (data.object(data.refs.teamFolder)!.children ?? []).find((t) => data.object(t)?.type === 'folder' && data.object(t)!.title !== 'Archive')!;
    const inSub = (data.object(subfolder)!.children ?? []).filter((t) => ['docx', 'file'].includes(data.object(t)!.type));
    expect(inSub.length).toBeGreaterThan(0);
    data.rename(subfolder, 'Renamed folder');
    const parent = data.refs.spaceNodes.find((t) => data.childrenOf(data.refs.space, t).some((c) => data.objTypeOf(data.node(c)!) === 'docx'))!;
    const child = data.childrenOf(data.refs.space, parent).find((c) => data.objTypeOf(data.node(c)!) === 'docx')!;
    // A rename of the page is an edit of it (its title is its first block): its own body is fetched, the children's are not.
    data.rename(parent, 'Renamed parent');
    const moved = data.refs.spaceNodes.find((t) => data.node(t)!.parent !== '' && data.objTypeOf(data.node(t)!) === 'docx' && data.childrenOf(data.refs.space, t).length === 0 && t !== child)!;
    data.move(moved, { space: data.refs.space });

    // A folder rename and a move are structural: only a listing of the tree (a full run, or the
    // next one after treeRefreshMinutes) sees them.
    const calls = callCounter(data);
    const run = await runDocs(stack, TENANT, 60_000, 'full');
    expect(run.status).toBe('succeeded');
    const rows = await content();
    for (const t of inSub) {
      expect(rows.get(t)?.data.path).toMatch(/^Team drive \/ (.* \/ )?Renamed folder \/ /);
      expect(calls.content(t)).toBe(0);
    }
    const childDoc = data.node(child)!.obj;
    expect(rows.get(childDoc)?.data.path).toMatch(/ \/ Renamed parent \/ /);
    expect(calls.content(childDoc)).toBe(0);
    const movedDoc = data.node(moved)!.obj;
    expect(rows.get(movedDoc)?.data.path).toBe(`Handbook / ${data.titleOf(data.node(moved)!)}`);
    expect(calls.content(movedDoc)).toBe(0);
    expect(calls.content()).toBe(calls.content(data.node(parent)!.obj));
  });

  it('a document moved to the trash and one deleted for good become deleted rows after confirmation', async () => {
    const wikiVictim = data.refs.spaceNodes.find((t) => data.objTypeOf(data.node(t)!) === 'docx' && data.childrenOf(data.refs.space, t).length === 0 && data.node(t)!.obj !== data.refs.wikiDoc.document)!;
    const driveVictim = (data.object(data.refs.archiveFolder)!.children ?? [])[3]!;
    const wikiDoc = data.node(wikiVictim)!.obj;
    data.delete(wikiVictim);
    data.delete(driveVictim, { permanent: true });
    const calls = callCounter(data);
    const run = await runDocs(stack, TENANT);
    expect(run.status).toBe('succeeded');
    expect(run.deletions.confirmed).toBeGreaterThanOrEqual(2);
    const rows = await content();
    expect(rows.get(wikiDoc)?.deletedAt).not.toBeNull();
    expect(rows.get(driveVictim)?.deletedAt).not.toBeNull();
    const nodes = await records(stack, TENANT, 'docs_nodes');
    expect(nodes.get(wikiVictim)?.deletedAt).not.toBeNull();
    expect(nodes.get(driveVictim)?.deletedAt).not.toBeNull();
    expect(calls.content()).toBe(0);
    // Restored from the trash: back (found by the next tree listing), with its body fetched again.
    data.restore(wikiVictim);
    const again = await runDocs(stack, TENANT, 60_000, 'full');
    expect(again.status).toBe('succeeded');
    expect((await content()).get(wikiDoc)?.deletedAt).toBeNull();
  });

  it('a document Lark refuses (403) is an item error naming it; the others go on and the next run fetches it', async () => {
    // The refusal below is a one-shot fault, so it must land on a content-phase read. A read made
    // while a tree listing waits (content-prefetch.ts) leaves a failure to the content phase, which
    // reads the document again: a real 403 refuses that read too, the one-shot fault does not, and
    // the run ended 'succeeded' (always when this case ran alone: its run was the first, which
    // lists every tree). So start from a tenant in step with Lark, its trees listed within
    // treeRefreshMinutes (after the cases above, a run with nothing to do): the run below is then a
    // check pass whose only content calls are the two edited documents', from the content phase.
    expect((await runDocs(stack, TENANT)).status).toBe('succeeded');
    const refused = data.refs.drive.docx;
    const other = data.refs.wikiDoc.document;
    data.edit(refused, { append: 'Edited while the app lost access.' });
    data.edit(other, { append: 'Edited as well.' });
    stack.sim.injectFault({ path: '/open-apis/docs/v1/content', status: 403, code: 2889902, msg: 'no permission', count: 1 });
    // One of the two content calls draws the fault (they go at once): that document is the item error.
    const calls = callCounter(data);
    const before = stack.sim.count('/open-apis/docs/v1/content');
    const partial = await runDocs(stack, TENANT);
    stack.sim.clearFaults();
    expect(calls.count(['wiki.nodes.list', 'drive.files.list']), 'no tree listed: the check pass found the edits').toBe(0);
    expect(partial.status).toBe('partial');
    expect(partial.itemErrors).toHaveLength(1);
    const [err] = partial.itemErrors;
    expect(err).toMatchObject({ item: 'docs_document', errorClass: 'permission_denied' });
    expect(err!.message).toMatch(/^document \S+ \(.+\): .*add the app to this document/);
    // Two calls: the refused one (answered by the injected fault, before the docs routes) and the other.
    expect(stack.sim.count('/open-apis/docs/v1/content') - before).toBe(2);
    expect(calls.count('docs.content')).toBe(1);
    const failedDoc = err!.id;
    const fine = failedDoc === refused ? other : refused;
    expect(String((await content()).get(fine)?.data.markdown)).toMatch(/Edited (while the app lost access|as well)\./);

    calls.mark();
    const again = await runDocs(stack, TENANT);
    expect(again.status).toBe('succeeded');
    expect(calls.count('docs.content')).toBe(1);
    expect(calls.count('docs.content', failedDoc)).toBe(1);
    // Three runs, the first of them a whole initial load when this case runs alone.
  }, 120_000);

  it('a document over 10 MB is read through its blocks; a large one through docs/v1/content', async () => {
    const big = stack.data.docs(BIG);
    await configureDocs(stack, BIG, { sources: [{ wikiSpaceId: big.refs.space }] });
    const calls = callCounter(big);
    const run = await runDocs(stack, BIG, 60_000);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const oversize = big.refs.oversizeDocs[0]!;
    expect(calls.count('docs.content', oversize)).toBe(1);
    expect(calls.count('docx.blocks', oversize)).toBeGreaterThan(1);
    const rows = await records(stack, BIG, 'docs_content');
    const row = rows.get(oversize)!;
    expect(row.data.size).toBeGreaterThan(10 * 1024 * 1024);
    // Hashed in chunks, the same digest as the whole text's.
    expect(row.data.body_hash).toBe(createHash('sha256').update(String(row.data.markdown)).digest('hex'));
    expect(String(row.data.markdown).startsWith(`# ${big.object(oversize)!.title}\n`)).toBe(true);
    expect(String(row.data.markdown)).toContain('## Part 1: ');
    expect((row.data as { raw?: { via?: string } }).raw?.via).toBe('blocks');
  });
});
