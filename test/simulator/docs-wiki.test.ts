import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { startDataClient, type DataClient } from './data-client.js';
import { caller, listNodes, walkSpace, type Call, type NodesPage, type WikiNode } from './docs-client.js';

// Wiki over raw HTTP against shared/lark/docs-wiki.md §2: spaces, child nodes 5 deep with paging
// (max 50), has_child, obj_type/obj_token, titles and edit times, get_node for every kind of node
// (and the Base module's nodes as before), permission filtering, and hooks moving the tree.

const TENANT = 'tk-sim-docs-wiki';
const SPACES = '/open-apis/wiki/v2/spaces';
const GET_NODE = '/open-apis/wiki/v2/spaces/get_node';

describe('simulator wiki: spaces, nodes 5 deep, get_node', () => {
  let client: DataClient;
  let call: Call;
  let token: string;
  let docs: DocsTenant;

  beforeAll(async () => {
    client = await startDataClient([TENANT], { enforceRateLimits: false });
    docs = client.data.docs(TENANT, { wikiDocuments: 400, wikiDepth: 5, largePages: 0, oversizePages: 0, archiveDocuments: 5 });
    call = caller(client.sim);
    token = await client.tenantToken(TENANT);
  });
  afterAll(async () => {
    await client.stop();
  });

  const nodes = (space: string, query: string) => call<NodesPage>(token, 'GET', `${SPACES}/${space}/nodes?${query}`);
  const getNode = (query: string) => call<{ node: WikiNode }>(token, 'GET', `${GET_NODE}?${query}`);

  it('lists only the spaces the app is a member of; one it joins appears', async () => {
    const list = async () => (await call<{ items: Array<Record<string, unknown>>; has_more: boolean }>(token, 'GET', `${SPACES}?page_size=10`)).body.data!;
    const first = await list();
    expect(first.has_more).toBe(false);
    expect(first.items).toEqual([
      { space_id: docs.refs.space, name: 'Handbook', description: 'How we work', space_type: 'team', visibility: 'private', open_sharing: 'closed' },
    ]);
    docs.addSpaceMember(docs.refs.privateSpace, 'app:*');
    expect((await list()).items.map((s) => s.space_id)).toEqual([docs.refs.space, docs.refs.privateSpace]);
    const paged = (await call<{ items: unknown[]; has_more: boolean; page_token?: string }>(token, 'GET', `${SPACES}?page_size=1`)).body.data!;
    expect([paged.items.length, paged.has_more, typeof paged.page_token]).toEqual([1, true, 'string']);
    docs.removeSpaceMember(docs.refs.privateSpace, 'app:*');
  });

  it('walks the space 5 deep: every node once, has_child right, the same at page sizes 50 and 7', async () => {
    const walked = await walkSpace(call, token, docs.refs.space, 50);
    expect(walked.map((n) => n.node_token).sort()).toEqual([...docs.refs.spaceNodes].sort());
    expect(Math.max(...walked.map((n) => n.depth))).toBe(5);
    expect(walked.find((n) => n.node_token === docs.refs.deepNode)?.depth).toBe(5);
    const byToken = new Map(walked.map((n) => [n.node_token, n]));
    for (const n of walked) {
      expect(n.space_id).toBe(docs.refs.space);
      if (n.depth > 1) expect(byToken.get(n.parent_node_token)?.depth).toBe(n.depth - 1);
      else expect(n.parent_node_token).toBe('');
      expect(n.has_child).toBe(n.listedChildren > 0);
      expect(n.has_child).toBe(walked.some((c) => c.parent_node_token === n.node_token));
      const obj = docs.object(n.obj_token)!;
      expect(n.obj_type).toBe(obj.type);
      for (const t of [n.obj_create_time, n.obj_edit_time, n.node_create_time]) expect(t).toMatch(/^\d{10}$/);
      expect(n.obj_edit_time).toBe(String(obj.edited));
      expect(n.url).toBe(`https://${TENANT}.feishu.cn/wiki/${n.node_token}`);
      if (n.node_type === 'shortcut') {
        const origin = byToken.get(n.origin_node_token)!;
        expect(origin.node_type).toBe('origin');
        expect([n.obj_token, n.obj_type]).toEqual([origin.obj_token, origin.obj_type]);
        expect(n.title).toBe(`Shortcut to ${origin.title}`);
      } else {
        expect(n.origin_node_token).toBe(n.node_token);
        expect(n.title).toBe(obj.title);
      }
    }
    const kinds = new Set(walked.map((n) => n.obj_type));
    for (const k of ['docx', 'sheet', 'bitable', 'file']) expect(kinds).toContain(k);
    expect(walked.some((n) => n.node_type === 'shortcut')).toBe(true);

    const small = await walkSpace(call, token, docs.refs.space, 7);
    expect(small.map((n) => n.node_token)).toEqual(walked.map((n) => n.node_token));
    const top = await listNodes(call, token, docs.refs.space, '', 7);
    expect(top.pages).toBe(Math.ceil(top.nodes.length / 7));

    const tooBig = await nodes(docs.refs.space, 'page_size=51');
    expect([tooBig.status, tooBig.body.code]).toEqual([400, 131002]);
    expect((await nodes(docs.refs.space, 'page_token=nope')).body.code).toBe(131002);
    expect((await nodes('7999999999999999999', '')).body.code).toBe(131005);
    expect((await nodes(docs.refs.space, 'parent_node_token=wikcnNoSuchNode')).body.code).toBe(131005);
  });

  it('get_node answers docx, sheet, file and bitable nodes by node token and by document token', async () => {
    const walked = await walkSpace(call, token, docs.refs.space, 50);
    for (const type of ['docx', 'sheet', 'file', 'bitable']) {
      const listed = walked.find((n) => n.obj_type === type && n.node_type === 'origin')!;
      const { depth: _d, listedChildren: _c, ...wire } = listed;
      const byNode = await getNode(`token=${listed.node_token}`);
      expect(byNode.body.code).toBe(0);
      expect(byNode.body.data!.node).toMatchObject(wire);
      const byObject = await getNode(`token=${listed.obj_token}&obj_type=${type}`);
      expect(byObject.body.data!.node.node_token).toBe(listed.node_token);
      expect((await getNode(`token=${listed.obj_token}&obj_type=${type === 'docx' ? 'sheet' : 'docx'}`)).body.code).toBe(131005);
    }
    const deep = await getNode(`token=${docs.refs.deepNode}&obj_type=wiki`);
    expect(deep.body.data!.node.has_child).toBe(false);
    expect(deep.body.data!.node.parent_node_token).not.toBe('');
    // A Drive document is not a wiki node.
    expect((await getNode(`token=${docs.refs.drive.docx}&obj_type=docx`)).body.code).toBe(131005);
    const missing = await getNode('token=wikcnNoSuchNode');
    expect([missing.status, missing.body.code]).toEqual([400, 131005]);
    expect((await getNode('')).body.code).toBe(131002);
  });

  it("still answers the Base module's wiki nodes as before", async () => {
    const base = client.data.bitable(TENANT, { projects: 5, ledger: 5, tasks: 5, events: 5 });
    const wiki = (await getNode(`token=${base.refs.wiki.nodeToken}&obj_type=wiki`)).body;
    expect(wiki.code).toBe(0);
    expect(wiki.data!.node).toMatchObject({ node_token: base.refs.wiki.nodeToken, obj_token: base.refs.wiki.appToken, obj_type: 'bitable', node_type: 'origin', has_child: false, title: 'Team tasks' });
    const doc = (await getNode(`token=${base.refs.docNode}`)).body.data!.node;
    expect(doc.obj_type).toBe('docx');
    const byApp = (await getNode(`token=${base.refs.wiki.appToken}&obj_type=bitable`)).body.data!.node;
    expect(byApp.node_token).toBe(base.refs.wiki.nodeToken);
  });

  it('refuses a space the app is not in (131006) and filters hidden nodes after paging: empty pages with has_more', async () => {
    const refused = await nodes(docs.refs.privateSpace, '');
    expect([refused.status, refused.body.code]).toEqual([400, 131006]);
    const privateNode = docs.space(docs.refs.privateSpace)!.top[0]!;
    expect((await getNode(`token=${privateNode}`)).body.code).toBe(131006);

    const top = (await listNodes(call, token, docs.refs.space, '', 50)).nodes;
    for (const n of top.slice(0, 3)) docs.hideNode(n.node_token);
    const first = (await nodes(docs.refs.space, 'page_size=3')).body.data!;
    expect(first.items).toEqual([]);
    expect(first.has_more).toBe(true);
    const second = (await nodes(docs.refs.space, `page_size=3&page_token=${first.page_token}`)).body.data!;
    expect(second.items.map((n) => n.node_token)).toEqual(top.slice(3, 6).map((n) => n.node_token));
    const listed = await listNodes(call, token, docs.refs.space, '', 3);
    expect(listed.nodes.map((n) => n.node_token)).toEqual(top.slice(3).map((n) => n.node_token));
    const hidden = top[0]!;
    expect((await getNode(`token=${hidden.node_token}`)).body.code).toBe(131006);
    if (hidden.has_child) expect((await nodes(docs.refs.space, `parent_node_token=${hidden.node_token}`)).body.code).toBe(131006);
    for (const n of top.slice(0, 3)) docs.unhideNode(n.node_token);
    expect((await listNodes(call, token, docs.refs.space, '', 50)).nodes).toHaveLength(top.length);
  });

  it('shows edits, renames, moves, additions and deletions in the tree', async () => {
    const node = () => getNode(`token=${docs.refs.wikiDoc.node}`).then((r) => r.body.data!.node);
    const before = await node();
    docs.edit(docs.refs.wikiDoc.node);
    const edited = await node();
    expect(Number(edited.obj_edit_time)).toBeGreaterThan(Number(before.obj_edit_time));
    expect(edited.obj_create_time).toBe(before.obj_create_time);
    docs.rename(docs.refs.wikiDoc.document, 'Renamed page');
    expect((await node()).title).toBe('Renamed page');

    const parent = docs.addDocument({ title: 'New parent', in: { space: docs.refs.space } });
    const parentNode = parent.node!;
    expect((await getNode(`token=${parentNode}`)).body.data!.node).toMatchObject({ has_child: false, parent_node_token: '', title: 'New parent', obj_token: parent.token });
    docs.move(docs.refs.wikiDoc.node, { space: docs.refs.space, parent: parentNode });
    expect((await node()).parent_node_token).toBe(parentNode);
    expect((await getNode(`token=${parentNode}`)).body.data!.node.has_child).toBe(true);
    expect((await listNodes(call, token, docs.refs.space, parentNode)).nodes.map((n) => n.node_token)).toEqual([docs.refs.wikiDoc.node]);
    const sheet = docs.addDocument({ type: 'sheet', title: 'Numbers', in: { space: docs.refs.space, parent: parentNode } });
    expect((await listNodes(call, token, docs.refs.space, parentNode)).nodes.map((n) => [n.obj_token, n.obj_type])).toEqual([
      [docs.refs.wikiDoc.document, 'docx'],
      [sheet.token, 'sheet'],
    ]);

    docs.delete(docs.refs.wikiDoc.node);
    expect((await listNodes(call, token, docs.refs.space, parentNode)).nodes.map((n) => n.obj_token)).toEqual([sheet.token]);
    expect((await getNode(`token=${docs.refs.wikiDoc.node}`)).body.code).toBe(131005);
    docs.restore(docs.refs.wikiDoc.node);
    expect((await node()).title).toBe('Renamed page');
    docs.delete(parentNode, { permanent: true });
    expect((await getNode(`token=${docs.refs.wikiDoc.node}`)).body.code).toBe(131005);
    expect(docs.object(docs.refs.wikiDoc.document)).toBeUndefined();
    expect((await getNode(`token=${parentNode}`)).body.code).toBe(131005);
  });

  it('cuts a nodes listing short on request', async () => {
    client.data.truncateListings('wiki.nodes.list');
    const cut = (await nodes(docs.refs.space, 'page_size=5')).body.data!;
    expect(cut.items).toHaveLength(5);
    expect(cut.has_more).toBe(true);
    expect(cut).not.toHaveProperty('page_token');
    expect(typeof (await nodes(docs.refs.space, 'page_size=5')).body.data!.page_token).toBe('string');
  });
});
