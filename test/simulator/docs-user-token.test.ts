import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import type { SimLarkUser } from '../../simulator/oauth/index.js';
import { REDIRECT, exchange, redirectParams, startOAuthSim, type OAuthSim } from './oauth-client.js';
import { caller, listFolder, type Call, type FilesPage } from './docs-client.js';

// Docs read with a user access token (shared/lark/docs-wiki.md §0): the user sees their own space,
// what is shared with them and the wiki spaces they belong to, not other people's documents; the
// app (tenant token) sees only what was shared with it.

const TENANT = 'tk-sim-docs-user';
const APP = { appId: 'cli_docs_user', appSecret: 'docs-user-secret' };

describe('simulator docs with user tokens', () => {
  let s: OAuthSim;
  let call: Call;
  let docs: DocsTenant;
  let owners: SimLarkUser[];
  let tokens: string[];
  let tenant: string;

  const userToken = async (who: SimLarkUser) => {
    const { code } = redirectParams(s.sim.authorizeAs(APP.appId, who, { redirect_uri: REDIRECT, scope: 'drive:drive:readonly wiki:wiki:readonly' }));
    return (await exchange(s.sim, APP, code!)).body.access_token!;
  };
  const post = async (path: string, body: unknown) => {
    const res = await fetch(s.sim.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return (await res.json()) as Record<string, unknown>;
  };

  beforeAll(async () => {
    s = await startOAuthSim([{ ...APP, kind: 'store', verificationToken: 'vtok-docs-user', redirectUris: [REDIRECT] }], [[APP.appId, TENANT]]);
    docs = s.data.docs(TENANT, { wikiDocuments: 12, largePages: 0, oversizePages: 0, archiveDocuments: 3, privateSpaceDocuments: 3 });
    owners = docs.refs.owners.map((openId, i) => s.sim.addUser(TENANT, { name: `Owner ${i + 1}`, openId }));
    tokens = await Promise.all(owners.map(userToken));
    call = caller(s.sim);
    const ticket = s.sim.issueTicket(APP.appId);
    const app = await post(AUTH_PATHS.appAccessToken, { app_id: APP.appId, app_secret: APP.appSecret, app_ticket: ticket });
    tenant = (await post(AUTH_PATHS.tenantAccessToken, { app_access_token: app.app_access_token, tenant_key: TENANT })).tenant_access_token as string;
  });
  afterAll(async () => {
    await s.stop();
  });

  const root = async (token: string) => (await call<FilesPage>(token, 'GET', '/open-apis/drive/v1/files')).body.data!.files.map((f) => f.token);
  const markdownCode = async (token: string, doc: string) => (await call(token, 'GET', `/open-apis/docs/v1/content?doc_token=${doc}`)).body.code;

  it("lists each user's own root, not the app's or another user's", async () => {
    const [o1, o2] = owners;
    const r1 = await root(tokens[0]!);
    expect(r1).toEqual(expect.arrayContaining(docs.refs.personal[o1!.openId]!));
    expect(r1).toContain(docs.refs.teamFolder);
    expect(r1).not.toContain(docs.refs.personal[o2!.openId]![0]);
    expect(await root(tokens[1]!)).toEqual(expect.arrayContaining([...docs.refs.personal[o2!.openId]!, docs.refs.privateFolder]));
    const appRoot = await root(tenant);
    expect(appRoot).not.toContain(docs.refs.teamFolder);
    expect(appRoot.every((t) => docs.object(t)!.folder === docs.refs.appRoot)).toBe(true);
  });

  it("refuses other people's folders and documents; sharing opens them", async () => {
    const folder = `/open-apis/drive/v1/files?folder_token=${docs.refs.privateFolder}`;
    const o1 = await call(tokens[0]!, 'GET', folder);
    expect([o1.status, o1.body.code]).toEqual([403, 1061004]);
    expect((await call(tenant, 'GET', folder)).body.code).toBe(1061004);
    // Owner 2 owns it, owner 3 was given it.
    expect((await listFolder(call, tokens[1]!, docs.refs.privateFolder)).map((f) => f.token)).toContain(docs.refs.privateDoc);
    expect((await listFolder(call, tokens[2]!, docs.refs.privateFolder)).map((f) => f.token)).toContain(docs.refs.privateDoc);
    expect(await markdownCode(tokens[2]!, docs.refs.privateDoc)).toBe(0);
    expect(await markdownCode(tokens[0]!, docs.refs.privateDoc)).toBe(2889902);
    expect(await markdownCode(tenant, docs.refs.privateDoc)).toBe(2889902);

    // Owner 1's first personal document is shared with owner 2 only.
    const mine = docs.refs.personal[owners[0]!.openId]!;
    expect(await markdownCode(tokens[1]!, mine[0]!)).toBe(0);
    expect(await markdownCode(tokens[2]!, mine[0]!)).toBe(2889902);
    expect(await markdownCode(tokens[1]!, mine[1]!)).toBe(2889902);
    expect(await markdownCode(tenant, mine[1]!)).toBe(2889902);
    docs.share(mine[1]!, 'app:*');
    expect(await markdownCode(tenant, mine[1]!)).toBe(0);
    docs.unshare(mine[1]!, 'app:*');
    expect(await markdownCode(tenant, mine[1]!)).toBe(2889902);

    const metas = await call<{ metas: unknown[]; failed_list: Array<{ token: string; code: number }> }>(tokens[0]!, 'POST', '/open-apis/drive/v1/metas/batch_query', {
      request_docs: [
        { doc_token: docs.refs.privateDoc, doc_type: 'docx' },
        { doc_token: mine[1]!, doc_type: 'docx' },
      ],
    });
    expect(metas.body.data!.failed_list).toEqual([{ token: docs.refs.privateDoc, code: 970003 }]);
    expect(metas.body.data!.metas).toHaveLength(1);
  });

  it('shows each caller the wiki spaces it belongs to', async () => {
    const spaces = async (token: string) => (await call<{ items: Array<{ space_id: string }> }>(token, 'GET', '/open-apis/wiki/v2/spaces')).body.data!.items.map((x) => x.space_id);
    expect(await spaces(tokens[0]!)).toEqual([docs.refs.space]);
    expect(await spaces(tokens[2]!)).toEqual([docs.refs.privateSpace]);
    expect(await spaces(tenant)).toEqual([docs.refs.space]);
    const nodes = (token: string) => call<{ items: unknown[] }>(token, 'GET', `/open-apis/wiki/v2/spaces/${docs.refs.privateSpace}/nodes`);
    expect((await nodes(tokens[2]!)).body.data!.items).toHaveLength(docs.space(docs.refs.privateSpace)!.top.length);
    expect((await nodes(tenant)).body.code).toBe(131006);
    expect((await nodes(tokens[0]!)).body.code).toBe(131006);
    // A node hidden from one user is filtered for that user alone.
    const top = docs.space(docs.refs.space)!.top[0]!;
    docs.hideNode(top, owners[1]!.openId);
    expect((await call(tokens[1]!, 'GET', `/open-apis/wiki/v2/spaces/get_node?token=${top}`)).body.code).toBe(131006);
    expect((await call(tokens[0]!, 'GET', `/open-apis/wiki/v2/spaces/get_node?token=${top}`)).body.code).toBe(0);
  });

  it('polls an export task only with the identity that created it; counts calls per principal', async () => {
    const doc = docs.refs.drive.docx;
    const created = await call<{ ticket: string }>(tenant, 'POST', '/open-apis/drive/v1/export_tasks', { token: doc, type: 'docx', file_extension: 'docx' });
    const ticket = created.body.data!.ticket;
    const byUser = await call(tokens[0]!, 'GET', `/open-apis/drive/v1/export_tasks/${ticket}?token=${doc}`);
    expect([byUser.status, byUser.body.code]).toEqual([403, 1061004]);
    expect((await call(tenant, 'GET', `/open-apis/drive/v1/export_tasks/${ticket}?token=${doc}`)).body.code).toBe(0);
    expect(docs.count('drive.export.get', { principal: owners[0]!.openId })).toBe(1);
    expect(docs.count('drive.export.get', { principal: `app:${APP.appId}` })).toBe(1);
  });
});
