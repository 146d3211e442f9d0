import pg from 'pg';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const CUSTOM = {
  appId: 'cli_custom_0001',
  appSecret: 'custom-secret-value-0001-never-shown',
  tenantKey: 'tenant-custom-1',
  tenantName: 'Custom Co',
};

/** Nothing listens on a port that was just free. */
const closedPort = freePort;

describe('POST /api/v1/apps (custom app registration)', () => {
  let stack: Stack;

  const register = (body: Record<string, unknown>) => stack.api('POST', '/api/v1/apps', body);
  const appRows = (appId: string) => stack.db.db.selectFrom('apps').selectAll().where('app_id', '=', appId).execute();
  const tenantRows = (tenantKey: string) => stack.db.db.selectFrom('tenants').selectAll().where('tenant_key', '=', tenantKey).execute();
  const addCustomApp = (n: number, extra: { tenantKey?: string } = {}) => {
    const app = {
      appId: `cli_custom_${String(n).padStart(4, '0')}`,
      appSecret: `custom-secret-value-${n}-never-shown`,
      tenantKey: extra.tenantKey ?? `tenant-custom-${n}`,
    };
    stack.sim.addApp({ ...app, kind: 'custom', verificationToken: `vt-${n}` });
    return app;
  };
  async function expectError(res: Response, status: number, code: string): Promise<string> {
    expect(res.status).toBe(status);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    return body.error.message;
  }

  beforeAll(async () => {
    stack = await startStack();
    stack.sim.addApp({ ...CUSTOM, kind: 'custom', verificationToken: 'vt-custom-1' });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('registers a custom app: 201, its tenant found through Lark, the secret sealed and never returned', async () => {
    const res = await register({ appId: CUSTOM.appId, appSecret: CUSTOM.appSecret });
    const text = await res.text();
    expect(res.status).toBe(201);
    expect(JSON.parse(text)).toEqual({ appId: CUSTOM.appId, tenantKey: CUSTOM.tenantKey, type: 'custom' });
    expect(text).not.toContain(CUSTOM.appSecret);

    // One credential check (the internal tenant token), one tenant lookup, nothing else.
    expect(stack.sim.count(AUTH_PATHS.tenantAccessTokenInternal, 0)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.tenantQuery, 0)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.appAccessTokenInternal)).toBe(0);

    const [app] = await appRows(CUSTOM.appId);
    // Without a domain the app uses LARK_DOMAIN.
    expect(app).toMatchObject({ app_id: CUSTOM.appId, kind: 'custom', domain: stack.env.LARK_DOMAIN });
    const sealed = app?.secret_sealed as Buffer;
    expect(sealed.includes(Buffer.from(CUSTOM.appSecret))).toBe(false);
    expect(sealed.toString('hex')).not.toContain(Buffer.from(CUSTOM.appSecret).toString('hex'));
    expect(stack.larksync.services.sealer.open(sealed, `apps.secret:${CUSTOM.appId}`)).toBe(CUSTOM.appSecret);

    // The token minted to prove the credentials is kept (sealed), so the tenant is usable at once.
    const [token] = await stack.db.db.selectFrom('access_tokens').selectAll().where('tenant_key', '=', CUSTOM.tenantKey).execute();
    const minted = stack.sim.validTenantTokens(CUSTOM.appId, CUSTOM.tenantKey);
    expect(minted).toHaveLength(1);
    expect(token).toMatchObject({ app_id: CUSTOM.appId, kind: 'tenant', mint_count: 1 });
    expect((token?.token_sealed as Buffer).includes(Buffer.from(minted[0] as string))).toBe(false);

    const detail = await stack.api('GET', `/api/v1/tenants/${CUSTOM.tenantKey}`);
    const tenant = (await detail.json()) as Record<string, unknown>;
    expect(tenant).toMatchObject({
      tenantKey: CUSTOM.tenantKey,
      appId: CUSTOM.appId,
      appType: 'custom',
      status: 'active',
      name: CUSTOM.tenantName,
      token: { status: 'valid', mintCount: 1, lastError: null },
      lifecycle: [{ action: 'custom_app_registered', eventId: null }],
    });
    // The app can mint on its own later, from the sealed secret.
    expect(await stack.larksync.services.tokens.getTenantAccessToken(CUSTOM.tenantKey)).toBe(minted[0]);
    expect(stack.logs.join('\n')).not.toContain(CUSTOM.appSecret);
  });

  it('is idempotent: registering the same app again answers the same and changes nothing', async () => {
    const before = (await tenantRows(CUSTOM.tenantKey))[0];
    const res = await register({ appId: CUSTOM.appId, appSecret: CUSTOM.appSecret });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ appId: CUSTOM.appId, tenantKey: CUSTOM.tenantKey, type: 'custom' });
    expect(await appRows(CUSTOM.appId)).toHaveLength(1);
    const after = await tenantRows(CUSTOM.tenantKey);
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ app_id: CUSTOM.appId, status: 'active', installed_at: before?.installed_at });
    const tokens = await stack.db.db.selectFrom('access_tokens').select('kind').where('tenant_key', '=', CUSTOM.tenantKey).execute();
    expect(tokens).toHaveLength(1);
    // Lark hands back the same token while it has more than 30 minutes left.
    expect(stack.sim.validTenantTokens(CUSTOM.appId, CUSTOM.tenantKey)).toHaveLength(1);
  });

  it('accepts an explicit origin as the domain and keeps its canonical form for the app', async () => {
    const app = addCustomApp(2);
    const res = await register({ ...app, tenantKey: undefined, domain: `${stack.sim.url}/` });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ appId: app.appId, tenantKey: app.tenantKey, type: 'custom' });
    expect((await appRows(app.appId))[0]?.domain).toBe(stack.sim.url);
  });

  it('answers 400 invalid_app_credentials for a wrong secret or an unknown app, storing nothing', async () => {
    const app = addCustomApp(3);
    stack.sim.resetCounts();
    const wrong = `${app.appSecret}-wrong`;
    const message = await expectError(await register({ appId: app.appId, appSecret: wrong }), 400, 'invalid_app_credentials');
    // auth.md §6: 10015 wrong app_secret; 99991543 an app_id (or secret) Lark does not know.
    expect(message).toContain('10015');
    expect(message).not.toContain(wrong);
    // Lark's code, never its text: a custom domain answers whatever it likes.
    expect(message).not.toMatch(/app secret|invalid/i);
    const unknown = await expectError(await register({ appId: 'cli_nobody_knows', appSecret: 'whatever-secret' }), 400, 'invalid_app_credentials');
    expect(unknown).toContain('99991543');

    expect(stack.sim.count(AUTH_PATHS.tenantAccessTokenInternal, 10015)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.tenantAccessTokenInternal, 99991543)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.tenantQuery)).toBe(0);
    expect(await appRows(app.appId)).toEqual([]);
    expect(await appRows('cli_nobody_knows')).toEqual([]);
    expect(await tenantRows(app.tenantKey)).toEqual([]);
    expect(stack.logs.join('\n')).not.toContain(wrong);
  });

  it('answers 400 invalid_domain for a domain that is not feishu, lark or an http(s) URL, without calling anyone', async () => {
    const app = addCustomApp(4);
    stack.sim.resetCounts();
    for (const domain of ['ftp://open.feishu.cn', 'open.feishu.cn', 'larksuite', 'javascript:alert(1)', 'file:///etc/passwd']) {
      const message = await expectError(await register({ appId: app.appId, appSecret: app.appSecret, domain }), 400, 'invalid_domain');
      expect(message).toContain('domain');
    }
    expect(stack.sim.callLog).toEqual([]);
    expect(await appRows(app.appId)).toEqual([]);
  });

  it('answers 502 lark_unreachable when nothing answers at the domain, or something that is not Lark does', async () => {
    const app = addCustomApp(5);
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const message = await expectError(await register({ ...app, tenantKey: undefined, domain: closed }), 502, 'lark_unreachable');
    expect(message).toContain('ECONNREFUSED');
    // larksync itself answers, but not like Lark.
    await expectError(await register({ ...app, tenantKey: undefined, domain: stack.larksync.url }), 502, 'lark_unreachable');
    expect(await appRows(app.appId)).toEqual([]);
    expect(await tenantRows(app.tenantKey)).toEqual([]);
  });

  it('answers 502 lark_unavailable (not "bad credentials") when Lark fails or throttles', async () => {
    const app = addCustomApp(6);
    stack.sim.injectFault({ path: AUTH_PATHS.tenantAccessTokenInternal, status: 500, code: 20050, msg: 'internal server error' });
    await expectError(await register({ appId: app.appId, appSecret: app.appSecret }), 502, 'lark_unavailable');
    stack.sim.injectFault({ path: AUTH_PATHS.tenantAccessTokenInternal, status: 429, code: 99991400, msg: 'request trigger frequency limit' });
    await expectError(await register({ appId: app.appId, appSecret: app.appSecret }), 502, 'lark_unavailable');
    stack.sim.injectFault({ path: AUTH_PATHS.tenantQuery, status: 503, code: 1500, msg: 'busy' });
    await expectError(await register({ appId: app.appId, appSecret: app.appSecret }), 502, 'lark_unavailable');
    expect(await appRows(app.appId)).toEqual([]);
    // Once Lark recovers, the same call succeeds.
    expect((await register({ appId: app.appId, appSecret: app.appSecret })).status).toBe(201);
  });

  it('answers 409 for the store app id, and for a tenant another app still serves', async () => {
    stack.sim.resetCounts();
    await expectError(await register({ appId: STORE_APP.appId, appSecret: STORE_APP.appSecret }), 409, 'app_conflict');
    expect(stack.sim.callLog).toEqual([]);

    await whenReady(stack);
    await stack.sim.appOpen(STORE_APP.appId, 'tenant-shared');
    await waitFor(async () => (await tenantRows('tenant-shared'))[0]?.status === 'active', 10_000, 'store tenant');
    const app = addCustomApp(7, { tenantKey: 'tenant-shared' });
    const message = await expectError(await register({ appId: app.appId, appSecret: app.appSecret }), 409, 'tenant_conflict');
    expect(message).toContain(STORE_APP.appId);
    expect(await appRows(app.appId)).toEqual([]);
    expect((await tenantRows('tenant-shared'))[0]?.app_id).toBe(STORE_APP.appId);
  });

  it('is atomic: of two registrations racing for one tenant, one gets 201 and the other 409, and only the winner is stored', async () => {
    const a = addCustomApp(8, { tenantKey: 'tenant-race' });
    const b = addCustomApp(9, { tenantKey: 'tenant-race' });
    // Both have passed Lark's checks; the test holds their writes until both are inside.
    const holder = new pg.Client({ connectionString: stack.db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table apps in share mode');
      const calls = [register({ appId: a.appId, appSecret: a.appSecret }), register({ appId: b.appId, appSecret: b.appSecret })];
      await waitFor(async () => {
        const r = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
                                             where datname = current_database() and wait_event_type = 'Lock'`.execute(stack.db.db);
        return r.rows[0]!.n >= 2;
      }, 10_000, 'both registrations inside');
      await holder.query('commit');
      const answers = await Promise.all(
        (await Promise.all(calls)).map(async (res) => ({ status: res.status, body: (await res.json()) as Record<string, unknown> })),
      );
      expect(answers.map((x) => x.status).sort()).toEqual([201, 409]);
      const winner = answers.find((x) => x.status === 201)!.body.appId as string;
      const loser = winner === a.appId ? b : a;
      expect(answers.find((x) => x.status === 409)!.body).toEqual({
        error: { code: 'tenant_conflict', message: expect.stringContaining(winner) },
      });
      expect((await tenantRows('tenant-race'))[0]).toMatchObject({ app_id: winner, status: 'active' });
      // The refused registration left nothing behind: no app row, no secret, no token.
      expect(await appRows(loser.appId)).toEqual([]);
      const tokens = await stack.db.db.selectFrom('access_tokens').select('app_id').where('tenant_key', '=', 'tenant-race').execute();
      expect(tokens).toEqual([{ app_id: winner }]);
    } finally {
      await holder.end();
    }
  });

  it('registers over an uninstalled tenant even when Lark`s clock (its last push time) runs ahead of ours', async () => {
    const key = 'tenant-skewed';
    const ahead = Date.now() + 10 * 60_000;
    const tenants = stack.larksync.services.tenants;
    await tenants.install({ tenantKey: key, appId: STORE_APP.appId }, 'ev-skew-open', 'installed', new Date(ahead));
    await tenants.uninstall(key, STORE_APP.appId, 'ev-skew-gone', new Date(ahead + 1_000));
    const app = addCustomApp(10, { tenantKey: key });

    const res = await register({ appId: app.appId, appSecret: app.appSecret });
    expect(res.status).toBe(201);
    // A 201 means the tenant is now served by the app, not left as it was.
    expect((await tenantRows(key))[0]).toMatchObject({ app_id: app.appId, status: 'active', status_reason: 'custom_app_registered' });
  });
});
