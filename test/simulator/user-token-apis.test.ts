import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import type { BitableTenant } from '../../simulator/data/bitable/index.js';
import { OAUTH_PATHS, type SimLarkUser } from '../../simulator/oauth/index.js';
import { REDIRECT, exchange, getWith, redirectParams, startOAuthSim, type OAuthSim } from './oauth-client.js';

// user_info (auth.md §5.4), is_user_admin (user-oauth.md), token errors on API calls (auth.md §6)
// and user tokens on the data APIs: a Base table only named users may read.

const TENANT = 'tk-oauth-apis';
const CUSTOM_TENANT = 'tk-oauth-apis-custom';
const STORE = { appId: 'cli_oauth_apis', appSecret: 'oauth-apis-secret' };
const CUSTOM = { appId: 'cli_oauth_apis_custom', appSecret: 'oauth-apis-custom-secret' };

describe('simulator user tokens on APIs: user_info, is_user_admin, Base access lists', () => {
  let s: OAuthSim;
  let ticket: string;
  let alice: SimLarkUser;
  let bob: SimLarkUser;
  let bitable: BitableTenant;

  const post = async (path: string, body: unknown, token = '') => {
    const res = await fetch(s.sim.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { code: number; msg?: string; data?: Record<string, unknown> } & Record<string, unknown> };
  };
  const tenantToken = async () => {
    const app = await post(AUTH_PATHS.appAccessToken, { app_id: STORE.appId, app_secret: STORE.appSecret, app_ticket: ticket });
    const tenant = await post(AUTH_PATHS.tenantAccessToken, { app_access_token: app.body.app_access_token, tenant_key: TENANT });
    return tenant.body.tenant_access_token as string;
  };
  const userToken = async (who: SimLarkUser, app = STORE) => {
    const { code } = redirectParams(s.sim.authorizeAs(app.appId, who, { redirect_uri: REDIRECT, scope: 'bitable:app:readonly' }));
    const res = await exchange(s.sim, app, code!);
    return res.body.access_token!;
  };

  beforeAll(async () => {
    s = await startOAuthSim(
      [
        { ...STORE, kind: 'store', verificationToken: 'vtok-apis', redirectUris: [REDIRECT] },
        { ...CUSTOM, kind: 'custom', verificationToken: 'vtok-apis-c', tenantKey: CUSTOM_TENANT, redirectUris: [REDIRECT] },
      ],
      [[STORE.appId, TENANT]],
    );
    ticket = s.sim.issueTicket(STORE.appId);
    alice = s.sim.addUser(TENANT, { name: 'Alice Reader', mobile: '+10000000001' });
    bob = s.sim.addUser(TENANT, { name: 'Bob Outsider' });
    bitable = s.data.bitable(TENANT, { projects: 30, ledger: 20, tasks: 5, events: 10 });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('user_info answers the signed-in user; user_id only for a custom app', async () => {
    const info = await getWith(s.sim, await userToken(alice), OAUTH_PATHS.userInfo);
    expect(info.status).toBe(200);
    expect(info.body.code).toBe(0);
    expect(info.body.data).toMatchObject({
      name: 'Alice Reader',
      en_name: 'Alice Reader',
      open_id: alice.openId,
      union_id: alice.unionId,
      email: alice.email,
      enterprise_email: alice.email,
      mobile: '+10000000001',
      tenant_key: TENANT,
    });
    for (const k of ['avatar_url', 'avatar_thumb', 'avatar_middle', 'avatar_big']) expect(typeof info.body.data?.[k]).toBe('string');
    expect(info.body.data?.user_id).toBeUndefined();

    // A contact-directory person of the custom app's tenant.
    const person = s.sim.oauth.candidates(CUSTOM.appId)[0]!;
    const custom = await getWith(s.sim, await userToken(person, CUSTOM), OAUTH_PATHS.userInfo);
    expect(custom.body.data).toMatchObject({ open_id: person.openId, user_id: person.userId, tenant_key: CUSTOM_TENANT, employee_no: person.employeeNo });
  });

  it('user_info refuses: no token 99991661, a tenant token 99991663, garbage 99991668, expired 99991677; status configurable', async () => {
    const res = await fetch(s.sim.url + OAUTH_PATHS.userInfo);
    expect((await res.json()) as { code: number }).toMatchObject({ code: 99991661 });
    expect((await getWith(s.sim, await tenantToken(), OAUTH_PATHS.userInfo)).body.code).toBe(99991663);
    expect((await getWith(s.sim, 'u-not-a-token', OAUTH_PATHS.userInfo)).body.code).toBe(99991668);
    const token = await userToken(alice);
    s.sim.advanceTime(7201);
    s.sim.setOptions({ tokenErrorHttpStatus: 401 });
    try {
      const expired = await getWith(s.sim, token, OAUTH_PATHS.userInfo);
      expect([expired.status, expired.body.code]).toEqual([401, 99991677]);
    } finally {
      s.sim.setOptions({ tokenErrorHttpStatus: 400 });
    }
  });

  it('is_user_admin: tenant token only, a settable admin set per tenant', async () => {
    const tenant = await tenantToken();
    const isAdmin = async (query: string, token = tenant) => getWith(s.sim, token, `${OAUTH_PATHS.isUserAdmin}?${query}`);
    // By default the installer named in app_open administers the tenant.
    expect((await isAdmin(`open_id=ou_admin_${TENANT}`)).body.data).toEqual({ is_app_admin: true });
    expect((await isAdmin(`open_id=${alice.openId}`)).body.data).toEqual({ is_app_admin: false });
    s.sim.setTenantAdmins(TENANT, [alice.openId]);
    expect((await isAdmin(`open_id=${alice.openId}`)).body.data).toEqual({ is_app_admin: true });
    expect((await isAdmin(`employee_id=${alice.userId}`)).body.data).toEqual({ is_app_admin: true });
    expect((await isAdmin(`open_id=ou_admin_${TENANT}`)).body.data).toEqual({ is_app_admin: false });
    const carol = s.sim.addUser(TENANT, { name: 'Carol Admin', admin: true });
    expect((await isAdmin(`open_id=${carol.openId}`)).body.data).toEqual({ is_app_admin: true });

    const missing = await isAdmin('');
    expect([missing.status, missing.body.code]).toEqual([400, 10003]);
    expect((await isAdmin(`open_id=${alice.openId}`, await userToken(alice))).body.code).toBe(99991668);
  });

  it('a Base table readable only by named users: tenant token 91403, a listed user normally, another user 91403', async () => {
    const { appToken, projects, ledger } = bitable.refs.main;
    const table = bitable.table(appToken, projects);
    table.readers = new Set([alice.openId]);
    const search = (tableId: string, token: string) => post(`/open-apis/bitable/v1/apps/${appToken}/tables/${tableId}/records/search?page_size=10`, {}, token);
    const fields = (token: string) => getWith(s.sim, token, `/open-apis/bitable/v1/apps/${appToken}/tables/${projects}/fields`);

    const tenant = await tenantToken();
    const asTenant = await search(projects, tenant);
    expect([asTenant.status, asTenant.body.code]).toEqual([403, 91403]);
    expect((await fields(tenant)).body.code).toBe(91403);

    const aliceToken = await userToken(alice);
    const asAlice = await search(projects, aliceToken);
    expect(asAlice.status).toBe(200);
    expect(asAlice.body.code).toBe(0);
    expect((asAlice.body.data as { items: unknown[] }).items).toHaveLength(10);
    expect((await fields(aliceToken)).body.code).toBe(0);
    const batch = await post(`/open-apis/bitable/v1/apps/${appToken}/tables/${projects}/records/batch_get`, { record_ids: [table.recordId(0)] }, aliceToken);
    expect(batch.body.code).toBe(0);

    const bobToken = await userToken(bob);
    const asBob = await search(projects, bobToken);
    expect([asBob.status, asBob.body.code]).toEqual([403, 91403]);
    // Tables without a list answer every valid caller.
    expect((await search(ledger, bobToken)).body.code).toBe(0);
    expect((await search(ledger, tenant)).body.code).toBe(0);

    // A revoked user's token stops at the door.
    await s.sim.revokeUserTokens(STORE.appId, alice.openId);
    const revoked = await search(projects, aliceToken);
    expect([revoked.status, revoked.body.code]).toEqual([400, 99991668]);
    table.readers = undefined;
  });

  it('other data APIs take a user token as well (contact answers as before)', async () => {
    const res = await getWith(s.sim, await userToken(bob), '/open-apis/contact/v3/users/find_by_department?department_id=0&page_size=5');
    expect(res.body.code).toBe(0);
    expect(Array.isArray(res.body.data?.items)).toBe(true);
  });
});
