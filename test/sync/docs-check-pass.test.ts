import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { callCounter, configureDocs, live, records, runDocs } from './docs-helpers.js';

const TENANT = 'tenant-docs-check';
const LISTINGS = ['wiki.nodes.list', 'drive.files.list'] as const;

// Between structure passes (a full listing of every tree, at most every treeRefreshMinutes) a run
// checks the documents it already knows through metas/batch_query: edits and renames arrive at
// once, a deletion brings its source's listing forward, and new pages wait for the next listing.
describe('docs module: check passes between tree listings', () => {
  let stack: Stack;
  let data: DocsTenant;
  const config = () => ({ sources: [{ wikiSpaceId: data.refs.space }, { folderToken: data.refs.teamFolder }] });

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    // Polling is what this file tests: docs change events would re-read edits between runs.
    stack.sim.events.pause();
    data = stack.data.docs(TENANT, { wikiDocuments: 40, wikiDepth: 3, largePages: 0, oversizePages: 0, teamFolders: 1, driveDepth: 1, driveDocuments: 4, archiveDocuments: 3 });
    await openTenant(stack, TENANT);
    await configureDocs(stack, TENANT, config());
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  const content = () => records(stack, TENANT, 'docs_content');
  const leaves = () => data.refs.spaceNodes.filter((t) => data.node(t)!.parent !== '' && data.objTypeOf(data.node(t)!) === 'docx' && data.childrenOf(data.refs.space, t).length === 0 && data.node(t)!.origin === undefined);

  it('the first run reads bodies while it lists the tree; the next one lists nothing and asks metas once per 200 documents', async () => {
    const calls = callCounter(data);
    const first = await runDocs(stack, TENANT);
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    // Content is read between listing calls, not only after the last one.
    const log = data.calls.slice(data.calls.length - calls.count());
    const lastListing = log.map((c) => c.api).lastIndexOf('wiki.nodes.list');
    const firstContent = log.findIndex((c) => c.api === 'docs.content');
    expect(firstContent).toBeGreaterThanOrEqual(0);
    expect(firstContent).toBeLessThan(lastListing);

    const docs = live(await content()).length;
    calls.mark();
    const second = await runDocs(stack, TENANT);
    expect(second.status).toBe('succeeded');
    expect(calls.count(LISTINGS)).toBe(0);
    expect(calls.content()).toBe(0);
    expect(calls.count('drive.metas.batch_query')).toBeGreaterThan(0);
    expect(calls.count('drive.metas.batch_query')).toBeLessThanOrEqual(Math.ceil(docs / 200));
  });

  it('an edit and a page rename arrive without a listing; a new page waits for the next tree listing', async () => {
    const [edited, renamed] = leaves();
    data.edit(edited!, { append: 'Checked through metas.' });
    data.rename(renamed!, 'Renamed between listings');
    const added = data.addDocument({ title: 'Added between listings', in: { space: data.refs.space } });

    const calls = callCounter(data);
    const run = await runDocs(stack, TENANT);
    expect(run.status).toBe('succeeded');
    expect(calls.count(LISTINGS)).toBe(0);
    let rows = await content();
    expect(rows.get(data.node(edited!)!.obj)?.data.markdown).toContain('Checked through metas.');
    expect(rows.get(data.node(renamed!)!.obj)?.data.path).toMatch(/ \/ Renamed between listings$/);
    expect(rows.get(added.token)).toBeUndefined();

    // A full run is a structure pass: the new page is found.
    const full = await runDocs(stack, TENANT, 60_000, 'full');
    expect(full.status).toBe('succeeded');
    rows = await content();
    expect(rows.get(added.token)?.data.path).toBe('Handbook / Added between listings');
  });

  it('a page deleted between listings makes its source listed in the same run, and its deletion is confirmed', async () => {
    const victim = leaves().at(-1)!;
    const doc = data.node(victim)!.obj;
    data.delete(victim);
    const calls = callCounter(data);
    const run = await runDocs(stack, TENANT);
    expect(run.status).toBe('succeeded');
    expect(calls.count('wiki.nodes.list')).toBeGreaterThan(0);
    // The folder source had nothing gone: it is still only checked.
    expect(calls.count('drive.files.list')).toBe(0);
    expect((await content()).get(doc)?.deletedAt).not.toBeNull();
  });

  it('treeRefreshMinutes 0 lists the trees on every run, and a change of include lists them at once', async () => {
    await configureDocs(stack, TENANT, { ...config(), treeRefreshMinutes: 0 });
    const calls = callCounter(data);
    expect((await runDocs(stack, TENANT)).status).toBe('succeeded');
    expect(calls.count('wiki.nodes.list')).toBeGreaterThan(0);
    expect(calls.count('drive.files.list')).toBeGreaterThan(0);

    await configureDocs(stack, TENANT, { ...config(), include: ['.'] });
    calls.mark();
    expect((await runDocs(stack, TENANT)).status).toBe('succeeded');
    expect(calls.count('wiki.nodes.list')).toBeGreaterThan(0);
    // And the run after it, within the hour, checks only.
    calls.mark();
    expect((await runDocs(stack, TENANT)).status).toBe('succeeded');
    expect(calls.count(LISTINGS)).toBe(0);
  });
});
