import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS, LarkSimulator } from '../../simulator/lark-simulator.js';

// The simulator's auth endpoints, driven over raw HTTP and checked against shared/lark/auth.md.

const STORE = { appId: 'cli_model_store', appSecret: 'model-store-secret' };
const STORE_B = { appId: 'cli_model_store_b', appSecret: 'model-store-secret-b' };
const CUSTOM = { appId: 'cli_model_custom', appSecret: 'model-custom-secret', tenantKey: 'tk-model-custom' };
const TENANT = 'tk-model';

interface Answer {
  status: number;
  logId: string | null;
  body: { code: number; msg?: string; app_access_token?: string; tenant_access_token?: string; expire?: number; data?: unknown };
}

describe('simulator token model', () => {
  const sim = new LarkSimulator();

  const post = async (path: string, body: unknown): Promise<Answer> => {
    const res = await fetch(sim.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify(body),
    });
    return { status: res.status, logId: res.headers.get('x-tt-logid'), body: (await res.json()) as Answer['body'] };
  };
  const query = async (authorization?: string): Promise<Answer> => {
    const res = await fetch(sim.url + AUTH_PATHS.tenantQuery, { headers: authorization ? { authorization } : {} });
    return { status: res.status, logId: res.headers.get('x-tt-logid'), body: (await res.json()) as Answer['body'] };
  };
  const appToken = (app = STORE, ticket = sim.currentTicket(app.appId)) =>
    post(AUTH_PATHS.appAccessToken, { app_id: app.appId, app_secret: app.appSecret, app_ticket: ticket });
  const tenantToken = (appAccessToken: string, tenantKey = TENANT) =>
    post(AUTH_PATHS.tenantAccessToken, { app_access_token: appAccessToken, tenant_key: tenantKey });

  beforeAll(async () => {
    sim.addApp({ ...STORE, kind: 'store', verificationToken: 'v1' });
    sim.addApp({ ...STORE_B, kind: 'store', verificationToken: 'v2' });
    sim.addApp({ ...CUSTOM, kind: 'custom', verificationToken: 'v3' });
    sim.installTenant(STORE.appId, TENANT);
    sim.installTenant(STORE_B.appId, TENANT);
    sim.issueTicket(STORE.appId);
    sim.issueTicket(STORE_B.appId);
    await sim.start();
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('answers tokens at the top level (no data wrapper), with a Lark log id', async () => {
    const a = await appToken();
    expect(a.status).toBe(200);
    expect(a.logId).toBeTruthy();
    expect(a.body).toMatchObject({ code: 0, expire: 7200 });
    expect(a.body.data).toBeUndefined();
    expect(a.body.app_access_token?.startsWith('a-')).toBe(true);
    const t = await tenantToken(a.body.app_access_token!);
    expect(t.body).toMatchObject({ code: 0, expire: 7200 });
    expect(t.body.tenant_access_token?.startsWith('t-')).toBe(true);
    const c = await post(AUTH_PATHS.tenantAccessTokenInternal, { app_id: CUSTOM.appId, app_secret: CUSTOM.appSecret });
    expect(c.body).toMatchObject({ code: 0, expire: 7200 });
  });

  it('returns the same token while >= 30 min remain, a new one after, and keeps the old one valid until its expiry', async () => {
    sim.setOptions({ tokenErrorHttpStatus: 400 });
    const a1 = (await appToken()).body.app_access_token!;
    const t1 = (await tenantToken(a1)).body;

    sim.advanceTime(600);
    const same = (await tenantToken(a1)).body;
    expect(same.tenant_access_token === t1.tenant_access_token).toBe(true);
    expect(same.expire).toBeLessThanOrEqual(t1.expire! - 600);
    expect(same.expire).toBeGreaterThanOrEqual(t1.expire! - 601);

    // 7200 - 600 - 5000 = 1600 s left: inside the last 30 minutes, so Lark rotates.
    sim.advanceTime(5000);
    const a2 = (await appToken()).body;
    expect(a2.app_access_token === a1).toBe(false);
    expect(a2.expire).toBe(7200);
    const t2 = (await tenantToken(a2.app_access_token!)).body;
    expect(t2.tenant_access_token === t1.tenant_access_token).toBe(false);
    expect(t2.expire).toBe(7200);
    expect(sim.validTenantTokens(STORE.appId, TENANT)).toHaveLength(2);
    expect((await query(`Bearer ${t1.tenant_access_token}`)).body.code).toBe(0);
    // The old app token still mints too, until it expires.
    expect((await tenantToken(a1)).body.code).toBe(0);

    sim.advanceTime(1601);
    const expired = await query(`Bearer ${t1.tenant_access_token}`);
    expect(expired.status).toBe(400);
    expect(expired.body.code).toBe(99991663);
    expect((await tenantToken(a1)).body.code).toBe(99991664);
    expect((await query(`Bearer ${t2.tenant_access_token}`)).body.code).toBe(0);
  });

  it('accepts the latest ticket and the one before (grace), refuses older and invalidated ones with 10012', async () => {
    const t1 = sim.issueTicket(STORE.appId);
    const t2 = sim.issueTicket(STORE.appId);
    const t3 = sim.issueTicket(STORE.appId);
    expect((await appToken(STORE, t3)).body.code).toBe(0);
    expect((await appToken(STORE, t2)).body.code).toBe(0);
    const old = await appToken(STORE, t1);
    expect(old.status).toBe(400);
    expect(old.body.code).toBe(10012);
    sim.invalidateTickets(STORE.appId);
    expect((await appToken(STORE, t3)).body.code).toBe(10012);
    expect((await appToken(STORE, undefined)).body.code).toBe(10012);
    sim.issueTicket(STORE.appId);
  });

  it('refuses bad credentials and the wrong flow for the app kind', async () => {
    // auth.md §6: 10015 wrong app_secret; 99991543 an app_id Lark does not know.
    expect((await post(AUTH_PATHS.tenantAccessTokenInternal, { app_id: CUSTOM.appId, app_secret: 'wrong' })).body.code).toBe(10015);
    expect((await post(AUTH_PATHS.tenantAccessTokenInternal, { app_id: 'cli_unknown', app_secret: 'wrong' })).body.code).toBe(99991543);
    expect((await post(AUTH_PATHS.tenantAccessTokenInternal, { app_id: CUSTOM.appId })).body.code).toBe(10003);
    expect((await post(AUTH_PATHS.tenantAccessTokenInternal, { app_id: STORE.appId, app_secret: STORE.appSecret })).body.code).toBe(10005);
    expect((await post(AUTH_PATHS.appAccessToken, { app_id: CUSTOM.appId, app_secret: CUSTOM.appSecret, app_ticket: 'x' })).body.code).toBe(10005);
    const resend = await post(AUTH_PATHS.ticketResend, { app_id: CUSTOM.appId, app_secret: CUSTOM.appSecret });
    expect(resend.body.code).toBe(10016);
    const ok = await post(AUTH_PATHS.ticketResend, { app_id: STORE.appId, app_secret: STORE.appSecret });
    expect(ok.body).toEqual({ code: 0, msg: 'ok' });
  });

  it('answers token errors on data APIs with the configured HTTP status, the code in the body', async () => {
    const a = (await appToken()).body.app_access_token!;
    for (const status of [200, 400, 401]) {
      sim.setOptions({ tokenErrorHttpStatus: status });
      const missing = await query();
      expect([missing.status, missing.body.code]).toEqual([status, 99991661]);
      const bogus = await query('Bearer t-bogus');
      expect([bogus.status, bogus.body.code]).toEqual([status, 99991663]);
      // An app token is not a tenant token.
      const wrongKind = await query(`Bearer ${a}`);
      expect([wrongKind.status, wrongKind.body.code]).toEqual([status, 99991663]);
      const badApp = await tenantToken('a-bogus');
      expect([badApp.status, badApp.body.code]).toEqual([status, 99991664]);
    }
    sim.setOptions({ tokenErrorHttpStatus: 400 });
  });

  it('uninstalling revokes the tenant tokens and refuses new ones', async () => {
    sim.installTenant(STORE.appId, 'tk-model-gone');
    const a = (await appToken()).body.app_access_token!;
    const t = (await tenantToken(a, 'tk-model-gone')).body.tenant_access_token!;
    expect((await query(`Bearer ${t}`)).body.code).toBe(0);
    sim.uninstallTenant(STORE.appId, 'tk-model-gone');
    expect((await query(`Bearer ${t}`)).body.code).toBe(99991663);
    expect((await tenantToken(a, 'tk-model-gone')).body.code).toBe(10013);
  });

  it('revokeAllTokens(appId) touches only that app, even when another app id starts with it', async () => {
    const a = (await appToken(STORE)).body.app_access_token!;
    const b = (await appToken(STORE_B)).body.app_access_token!;
    const ta = (await tenantToken(a)).body.tenant_access_token!;
    const tb = (await tenantToken(b)).body.tenant_access_token!;
    sim.revokeAllTokens(STORE.appId);
    expect((await query(`Bearer ${ta}`)).body.code).toBe(99991663);
    expect((await query(`Bearer ${tb}`)).body.code).toBe(0);
    expect((await tenantToken(b)).body.code).toBe(0);
  });

  it('counts calls by path and code, and injected faults answer before the handler', async () => {
    sim.resetCounts();
    sim.injectFault({ path: AUTH_PATHS.appAccessToken, status: 500, code: 1500, count: 2 });
    expect((await appToken()).status).toBe(500);
    expect((await appToken()).status).toBe(500);
    expect((await appToken()).body.code).toBe(0);
    expect(sim.count(AUTH_PATHS.appAccessToken)).toBe(3);
    expect(sim.count(AUTH_PATHS.appAccessToken, 1500)).toBe(2);
    expect(sim.count(AUTH_PATHS.appAccessToken, 0)).toBe(1);
    const unknown = await fetch(`${sim.url}/open-apis/nope/v1/x?y=1`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { code: number }).code).toBe(99991201);
    expect(sim.count('/open-apis/nope/v1/x')).toBe(1);
  });
});
