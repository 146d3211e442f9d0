import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { challengeOf, newVerifier } from '../../src/oauth/pkce.js';
import { STORE_APP, startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { expectError } from '../helpers/sync-api.js';
import { callCounter, configureDocs, live, records, runDocs } from './docs-helpers.js';

const WIKI = 'tenant-docs-wiki';
const DRIVE = 'tenant-docs-drive';
const USER = 'tenant-docs-user';

const small = { wikiDocuments: 40, wikiDepth: 4, largePages: 0, oversizePages: 0, privateSpaceDocuments: 3, teamFolders: 3, driveDepth: 2, driveDocuments: 12, archiveDocuments: 8, personalDocuments: 1 };

describe('docs module: sources, content, paths', () => {
  let stack: Stack;
  let wiki: DocsTenant;
  let drive: DocsTenant;

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    wiki = stack.data.docs(WIKI, small);
    drive = stack.data.docs(DRIVE, small);
    stack.data.docs(USER, small);
    for (const t of [WIKI, DRIVE, USER]) await openTenant(stack, t);
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('a wiki space: every docx node with its path, one content row per document, Markdown from docs/v1/content', async () => {
    await configureDocs(stack, WIKI, { sources: [{ wikiSpaceId: wiki.refs.space }] });
    const calls = callCounter(wiki);
    const run = await runDocs(stack, WIKI);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');

    const nodes = live(await records(stack, WIKI, 'docs_nodes'));
    const expected = wiki.refs.spaceNodes.filter((t) => ['docx', 'file'].includes(wiki.objTypeOf(wiki.node(t)!)));
    expect(nodes.map((n) => n.key).sort()).toEqual([...expected].sort());
    const one = nodes.find((n) => n.key === wiki.refs.wikiDoc.node)!;
    expect(one.data.path).toMatch(/^Handbook \/ /);
    expect(one.data.obj_token).toBe(wiki.refs.wikiDoc.document);
    expect(one.data.source).toBe(`wiki:${wiki.refs.space}`);

    const content = await records(stack, WIKI, 'docs_content');
    const doc = content.get(wiki.refs.wikiDoc.document)!;
    expect(doc.data.format).toBe('markdown');
    expect(typeof doc.data.markdown).toBe('string');
    expect(doc.data.markdown).toContain(`# ${wiki.object(wiki.refs.wikiDoc.document)!.title}`);
    expect(doc.data.body_hash).toBe(createHash('sha256').update(String(doc.data.markdown)).digest('hex'));
    expect(doc.data.size).toBe(Buffer.byteLength(String(doc.data.markdown)));
    expect(doc.data.revision).toBe(wiki.object(wiki.refs.wikiDoc.document)!.revision);
    // One row per document, even where a wiki shortcut reaches it too.
    const docs = new Set(expected.map((t) => wiki.node(t)!.obj));
    expect(live(content).map((r) => r.key).sort()).toEqual([...docs].sort());
    // docx bodies through the Markdown API only.
    expect(calls.count('docs.content')).toBe([...docs].filter((d) => wiki.object(d)?.type === 'docx').length);
    expect(calls.count(['docx.blocks', 'docx.raw_content', 'drive.files.download'])).toBe(0);
  });

  it('a wiki page URL (Feishu or Lark host) brings that page and everything below it, with paths from the space down', async () => {
    // A node two levels down that has children.
    const parentOf = (t: string) => wiki.node(t)!.parent;
    const mid = wiki.refs.spaceNodes.find((t) => parentOf(t) !== '' && wiki.childrenOf(wiki.refs.space, t).length > 0)!;
    const below = (t: string): string[] => wiki.childrenOf(wiki.refs.space, t).flatMap((c) => [c, ...below(c)]);
    const subtree = [mid, ...below(mid)].filter((t) => ['docx', 'file'].includes(wiki.objTypeOf(wiki.node(t)!)));
    const title = (t: string) => wiki.titleOf(wiki.node(t)!);
    const ancestors: string[] = [];
    for (let p = parentOf(mid); p; p = parentOf(p)) ancestors.unshift(title(p));

    for (const host of [`${WIKI}.feishu.cn`, 'acme.sg.larksuite.com']) {
      await configureDocs(stack, WIKI, { sources: [{ url: `https://${host}/wiki/${mid}?from=space_home#section` }] });
      const run = await runDocs(stack, WIKI);
      expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
      const nodes = live(await records(stack, WIKI, 'docs_nodes'));
      expect(nodes.map((n) => n.key).sort()).toEqual([...subtree].sort());
      const top = nodes.find((n) => n.key === mid)!;
      expect(top.data.path).toBe(['Handbook', ...ancestors, title(mid)].join(' / '));
      expect(top.data.source).toBe(`node:${mid}`);
      // The space's other pages went: the source changed (their rows are no longer in any source).
      const content = live(await records(stack, WIKI, 'docs_content'));
      expect(content.map((c) => c.key).sort()).toEqual([...new Set(subtree.map((t) => wiki.node(t)!.obj))].sort());
    }
  });

  it('a Drive folder (by token and by URL) and a single document URL', async () => {
    const calls = callCounter(drive);
    await configureDocs(stack, DRIVE, { sources: [{ folderToken: drive.refs.teamFolder }, { url: `https://${DRIVE}.larksuite.com/docx/${drive.refs.personal[drive.refs.owners[0]!]![0]}` }] });
    drive.share(drive.refs.personal[drive.refs.owners[0]!]![0]!, 'app:*');
    const run = await runDocs(stack, DRIVE);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const nodes = live(await records(stack, DRIVE, 'docs_nodes'));
    const inFolder = nodes.filter((n) => n.data.source === `folder:${drive.refs.teamFolder}`);
    // Everything below the folder, folders walked, of the default kinds (docx and uploaded files).
    const expected: string[] = [];
    const walk = (folder: string) => {
      for (const t of drive.object(folder)!.children ?? []) {
        const o = drive.object(t)!;
        if (o.trashed) continue;
        if (o.type === 'folder') walk(t);
        else if (o.type === 'docx' || o.type === 'file') expected.push(t);
      }
    };
    walk(drive.refs.teamFolder);
    expect(inFolder.map((n) => n.key).sort()).toEqual(expected.sort());
    const handbook = inFolder.find((n) => n.key === drive.refs.drive.docx)!;
    expect(handbook.data.path).toBe('Team drive / Team handbook');
    const deep = inFolder.find((n) => String(n.data.path).split(' / ').length >= 3);
    expect(deep).toBeDefined();
    const single = nodes.find((n) => n.data.source === `doc:${drive.refs.personal[drive.refs.owners[0]!]![0]}`)!;
    expect(single.data.path).toBe(single.data.title);

    const content = await records(stack, DRIVE, 'docs_content');
    // An uploaded file: metadata only; the sink downloads it.
    const pdf = content.get(drive.refs.drive.pdf)!;
    expect(pdf.data).toMatchObject({ format: 'file', markdown: null, obj_type: 'file', file: { name: 'Contract.pdf', mime: 'application/pdf', token: drive.refs.drive.pdf } });
    expect(pdf.data.body_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(calls.count('drive.files.download')).toBe(0);
    // The folder's name and the single document: metas, one call each (the folder is opened by its own).
    expect(calls.count('drive.metas.batch_query')).toBe(2);
    expect(calls.count('drive.files.list')).toBe(drive.count('drive.files.list'));
  });

  it('include and exclude match the path, exclude wins; types choose kinds; an excluded document goes', async () => {
    await configureDocs(stack, DRIVE, { sources: [{ folderToken: drive.refs.teamFolder }], include: ['^Team drive / (Team|Archive)'], exclude: ['Archived note 2$'] });
    let run = await runDocs(stack, DRIVE);
    expect(run.status).toBe('succeeded');
    let content = live(await records(stack, DRIVE, 'docs_content'));
    const paths = content.map((c) => String(c.data.path)).sort();
    expect(paths.length).toBeGreaterThan(3);
    for (const p of paths) {
      expect(p).toMatch(/^Team drive \/ (Team|Archive)/);
      expect(p).not.toMatch(/Archived note 2$/);
    }
    expect(paths).toContain('Team drive / Archive / Archived note 1');
    expect(paths).not.toContain('Team drive / Archive / Archived note 2');
    // The single document of the last test left the config: its row is gone.
    const single = drive.refs.personal[drive.refs.owners[0]!]![0]!;
    expect((await records(stack, DRIVE, 'docs_content')).get(single)?.deletedAt).not.toBeNull();

    // Now exclude the archive: its documents go (deleted) although Lark still has them.
    await configureDocs(stack, DRIVE, { sources: [{ folderToken: drive.refs.teamFolder }], include: ['^Team drive / (Team|Archive)'], exclude: ['Archived note 2$', '/ Archive /'] });
    run = await runDocs(stack, DRIVE);
    expect(run.status).toBe('succeeded');
    const all = await records(stack, DRIVE, 'docs_content');
    const archived = [...all.values()].filter((c) => String(c.data.path).startsWith('Team drive / Archive /'));
    expect(archived.length).toBeGreaterThan(0);
    for (const a of archived) expect(a.deletedAt).not.toBeNull();
    const nodes = await records(stack, DRIVE, 'docs_nodes');
    for (const n of nodes.values()) if (String(n.data.path).startsWith('Team drive / Archive /')) expect(n.deletedAt).not.toBeNull();

    // types: only docx: the uploaded files go; a legacy doc comes in through an export task.
    await configureDocs(stack, DRIVE, { sources: [{ folderToken: drive.refs.teamFolder }], types: ['docx', 'doc', 'sheet'] });
    const calls = callCounter(drive);
    run = await runDocs(stack, DRIVE);
    expect(run.status, JSON.stringify(run)).toBe('succeeded');
    content = live(await records(stack, DRIVE, 'docs_content'));
    expect(new Set(content.map((c) => c.data.obj_type))).toEqual(new Set(['docx', 'doc', 'sheet']));
    const legacy = content.find((c) => c.key === drive.refs.drive.doc)!;
    expect(legacy.data.format).toBe('markdown');
    expect(String(legacy.data.markdown)).toContain('Legacy notes');
    const sheet = content.find((c) => c.key === drive.refs.drive.sheet)!;
    expect(String(sheet.data.markdown)).toMatch(/\| Item \| Amount \| Quarter \| Comment \|/);
    expect(calls.count('drive.export.create')).toBe(content.filter((c) => c.data.obj_type !== 'docx').length);
    expect(calls.count('docs.content', drive.refs.drive.doc)).toBe(0);
  });

  it('answers 400 for an invalid regular expression, naming the field and the position', async () => {
    const put = (config: unknown) => expectError(stack, 'PUT', `/api/v1/tenants/${DRIVE}/connectors/docs`, { enabled: true, config }, 400, 'invalid_config');
    const folder = { folderToken: drive.refs.teamFolder };
    expect(await put({ sources: [folder], include: ['ok', 'Hand(book'] })).toBe(
      'config.include.1: invalid regular expression at position 9 (0-based) of "Hand(book": Unterminated group',
    );
    expect(await put({ sources: [folder], exclude: ['[a-'] })).toMatch(/^config\.exclude\.0: invalid regular expression at position 3 /);
    expect(await put({ sources: [] })).toMatch(/^config\.sources: /);
    expect(await put({ sources: [{ url: 'https://example.com/wiki/abc' }] })).toMatch(/^config\.sources\.0\.url: url must be a wiki space/);
    expect(await put({ sources: [{ wikiSpaceId: '1', folderToken: 'fldcnX1234' }] })).toMatch(/^config\.sources\.0: each source needs exactly one/);
    expect(await put({ sources: [folder], types: ['docx', 'slides'] })).toMatch(/^config\.types\.1: expected one of "docx", "doc", "sheet", "bitable", "file"/);
    expect(await put({ sources: [folder], sinks: 'ragflow' })).toMatch(/^config\.sinks: /);
    // Defaults filled in, sinks stored as given.
    const ok = await fetch(`${stack.larksync.url}/api/v1/tenants/${DRIVE}/connectors/docs`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${stack.env.API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ enabled: true, config: { sources: [folder], sinks: ['kb-main'] } }),
    });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { config: unknown }).config).toEqual({ sources: [folder], types: ['docx', 'file'], treeRefreshMinutes: 60, sinks: ['kb-main'] });
  });

  it('a source the app may not read: 403 from Lark, and the run says which folder, space or document and what to do', async () => {
    await configureDocs(stack, USER, { sources: [{ folderToken: stack.data.docs(USER).refs.privateFolder }] });
    const failed = await runDocs(stack, USER);
    expect(failed.status).toBe('failed');
    expect(failed.error?.class).toBe('permission_denied');
    expect(failed.error?.message).toContain(`Drive folder ${stack.data.docs(USER).refs.privateFolder}`);
    expect(failed.error?.message).toMatch(/share this folder with the app/);

    const data = stack.data.docs(USER);
    await configureDocs(stack, USER, {
      sources: [{ wikiSpaceId: data.refs.privateSpace }, { url: `https://${USER}.feishu.cn/docx/${data.refs.privateDoc}` }, { folderToken: data.refs.deepFolder }],
    });
    const partial = await runDocs(stack, USER);
    expect(partial.status).toBe('partial');
    const byId = Object.fromEntries(partial.itemErrors.map((e) => [e.id, e]));
    expect(byId[`wiki:${data.refs.privateSpace}`]?.message).toMatch(new RegExp(`wiki space ${data.refs.privateSpace}: .*add the app to this wiki space`));
    expect(byId[`doc:${data.refs.privateDoc}`]?.message).toMatch(new RegExp(`document ${data.refs.privateDoc}: .*add the app to this document`));
    expect(byId[`wiki:${data.refs.privateSpace}`]?.errorClass).toBe('permission_denied');
    expect(live(await records(stack, USER, 'docs_nodes')).length).toBeGreaterThan(0);
  });

  it('reads as a signed-in user (identity { user }) what only that user may see', async () => {
    const data = stack.data.docs(USER);
    const reader = data.refs.owners[2]!;
    const redirect = `${stack.larksync.url}/auth/lark/callback`;
    const verifier = newVerifier();
    const back = new URL(
      stack.sim.authorizeAs(STORE_APP.appId, { openId: reader, tenantKey: USER }, { redirect_uri: redirect, scope: 'offline_access wiki:wiki:readonly drive:drive:readonly docs:document.content:read', state: 's', code_challenge: challengeOf(verifier), code_challenge_method: 'S256' }),
    );
    const app = (await stack.larksync.services.grants.app(STORE_APP.appId))!;
    await (await stack.larksync.services.grants.exchange(app, { code: back.searchParams.get('code')!, verifier, redirectUri: redirect })).keep();

    await configureDocs(stack, USER, { sources: [{ folderToken: data.refs.privateFolder }, { wikiSpaceId: data.refs.privateSpace }], identity: { user: reader } });
    const calls = callCounter(data);
    const run = await runDocs(stack, USER);
    expect(run.status, JSON.stringify(run)).toBe('succeeded');
    const content = live(await records(stack, USER, 'docs_content'));
    const salary = content.find((c) => c.key === data.refs.privateDoc)!;
    expect(salary.data.path).toBe('Private / Salary review');
    expect(content.some((c) => String(c.data.path).startsWith('Leadership / '))).toBe(true);
    expect(data.calls.slice(-calls.count()).every((c) => c.principal === reader)).toBe(true);
  });
});
