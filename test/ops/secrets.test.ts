import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrantRows, type GrantState } from '../../src/grants/grant-rows.js';
import { findGrant } from '../../src/grants/grants.repository.js';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { csrfOf, fetchPage, signInAs, type Page } from '../helpers/web-session.js';

const CUSTOM = { appId: 'cli_secret_custom', appSecret: 'custom-app-secret-9f8e7d6c5b4a', tenantKey: 'tenant-secret-custom' };

describe('secrets never leave: not in logs, API answers or database plaintext', () => {
  let stack: Stack;
  const answers: string[] = [];
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await stack.api(method, path, body, token);
    const text = await res.text();
    answers.push(`${res.status} ${JSON.stringify(Object.fromEntries(res.headers))} ${text}`);
    return { status: res.status, text };
  };

  beforeAll(async () => {
    stack = await startStack();
    stack.sim.addApp({ ...CUSTOM, kind: 'custom', verificationToken: 'vt-secret-custom' });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** Every database row, as text; bytea shows up as hex, so callers look for the hex too. */
  async function dumpDatabase(): Promise<string> {
    const tables = await sql<{ schema: string; name: string }>`
      select table_schema as schema, table_name as name from information_schema.tables
      where table_schema in ('public', 'graphile_worker') and table_type = 'BASE TABLE'`.execute(stack.db.db);
    const dump: string[] = [];
    for (const t of tables.rows) {
      const rows = await sql<{ j: string }>`select row_to_json(x)::text as j from ${sql.table(`${t.schema}.${t.name}`)} x`.execute(stack.db.db);
      dump.push(...rows.rows.map((r) => r.j));
    }
    return dump.join('\n');
  }

  it('runs ticket, app_open, custom app registration and rejected pushes without leaking any secret', async () => {
    // The ticket arrives (startup resend), a tenant installs, its tokens are minted.
    await whenReady(stack);
    await stack.sim.appOpen(STORE_APP.appId, 'tenant-secret');
    await waitFor(async () => {
      const { status, text } = await call('GET', '/api/v1/tenants/tenant-secret');
      return status === 200 && text.includes('"status":"valid"');
    }, 10_000, 'tenant token');
    // A newer ticket, as Lark pushes hourly.
    expect((await stack.sim.pushTicket(STORE_APP.appId)).status).toBe(200);

    // Custom app: a wrong secret first, then the right one.
    const wrongSecret = `${CUSTOM.appSecret}-typo`;
    expect((await call('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: wrongSecret })).status).toBe(400);
    expect((await call('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret })).status).toBe(201);
    expect((await call('GET', `/api/v1/tenants/${CUSTOM.tenantKey}`)).status).toBe(200);
    expect((await call('GET', '/api/v1/tenants')).status).toBe(200);

    // Rejected pushes: a forged signature, a wrong verification token, a plaintext push.
    const plaintext = JSON.stringify({ uuid: 'u-secret', token: STORE_APP.verificationToken, ts: '1', type: 'event_callback', event: { type: 'app_open' } });
    const wire = stack.sim.wireFormat(STORE_APP.appId, plaintext);
    const pushes = [
      fetch(stack.eventsUrl, { method: 'POST', body: wire.body, headers: { ...wire.headers, 'x-lark-signature': '0'.repeat(64) } }),
      (() => {
        const w = stack.sim.wireFormat(STORE_APP.appId, plaintext.replace(STORE_APP.verificationToken, 'guessed-verification-token'));
        return fetch(stack.eventsUrl, { method: 'POST', body: w.body, headers: w.headers });
      })(),
      fetch(stack.eventsUrl, { method: 'POST', body: plaintext, headers: { 'content-type': 'application/json' } }),
    ];
    for (const res of await Promise.all(pushes)) {
      expect([400, 401]).toContain(res.status);
      answers.push(await res.text());
    }
    // A guessed API token.
    expect((await call('GET', '/api/v1/tenants', undefined, 'guessed-api-token-0000')).status).toBe(401);
    await stack.sim.settle();

    const appToken = await stack.larksync.services.tokens.getAppAccessToken(STORE_APP.appId);
    const secrets: Record<string, string[]> = {
      'store app secret': [STORE_APP.appSecret],
      'custom app secret': [CUSTOM.appSecret, wrongSecret],
      'encrypt key': [STORE_APP.encryptKey],
      'verification token': [STORE_APP.verificationToken],
      'API token': [stack.env.API_TOKEN as string],
      'ENCRYPTION_KEY': [stack.env.ENCRYPTION_KEY as string],
      'app ticket': [stack.sim.currentTicket(STORE_APP.appId) as string],
      'app access token': [appToken],
      'tenant tokens': [
        ...stack.sim.validTenantTokens(STORE_APP.appId, 'tenant-secret'),
        ...stack.sim.validTenantTokens(CUSTOM.appId, CUSTOM.tenantKey),
      ],
    };
    expect(secrets['tenant tokens']).toHaveLength(2);
    for (const [what, values] of Object.entries(secrets)) for (const v of values) expect(v, what).toBeTruthy();

    const database = await dumpDatabase();
    // The dump is real: it holds the tenants and the sealed secrets (in hex).
    expect(database).toContain('tenant-secret');
    expect(database).toContain(CUSTOM.appId);
    expect(database).toMatch(/\\\\x[0-9a-f]{64,}/);

    const logs = stack.logs.join('');
    expect(logs).toContain('lark push rejected');
    // The event route makes its request logger only when something is logged: the line still
    // carries the request id, and accepted pushes wrote no per-request line at info.
    const rejected = stack.logs.filter((l) => l.includes('lark push rejected')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rejected.every((l) => typeof l.reqId === 'string' && l.level === 40)).toBe(true);
    expect(stack.logs.some((l) => l.includes('"incoming request"') && l.includes('/lark/events'))).toBe(false);
    const everything = { logs, 'API answers': answers.join('\n'), database };
    for (const [where, text] of Object.entries(everything)) {
      for (const [what, values] of Object.entries(secrets)) {
        for (const value of values) {
          expect(text.includes(value), `${what} found in ${where}`).toBe(false);
          expect(text.includes(Buffer.from(value).toString('hex')), `${what} (hex) found in ${where}`).toBe(false);
        }
      }
    }
  });

  it('keeps user grants and sessions out of logs, pages, API answers and the database: user tokens, codes, states, session ids', async () => {
    const tenantKey = 'tenant-secret';
    const user = stack.sim.addUser(tenantKey, { name: 'Sigrid Secret', admin: true });
    const key = { appId: STORE_APP.appId, tenantKey, openId: user.openId };
    const grantRows = new GrantRows(stack.larksync.services.db, stack.larksync.services.sealer, 30_000);
    const userTokens = async () => {
      const row = (await findGrant(stack.larksync.services.db, key))!;
      return [(await grantRows.readFresh(key))!, grantRows.refreshTokenOf(key, { row } as GrantState)];
    };

    const signedIn = await signInAs(stack, user);
    const callback = new URL(signedIn.callbackUrl);
    const cookieValue = decodeURIComponent(signedIn.cookie.slice('larksync_session='.length));
    const sessionId = cookieValue.slice(0, cookieValue.lastIndexOf('.'));
    const issued = await userTokens();
    // A refresh, so a second generation of tokens exists too.
    await stack.larksync.services.db.updateTable('user_grants').set({ refresh_at: new Date(0) }).where('open_id', '=', user.openId).execute();
    await stack.larksync.services.grants.token(key);
    const refreshed = await userTokens();
    expect(refreshed[1]).not.toBe(issued[1]);

    // The admin page, every kind of answer it gives.
    const pages: string[] = [];
    const keep = (p: Page) => {
      const headers = Object.fromEntries([...p.headers].filter(([name]) => name !== 'set-cookie'));
      pages.push(`${p.status} ${JSON.stringify(headers)} ${p.body}`);
      return p;
    };
    const cookie = signedIn.cookie;
    keep(await fetchPage(stack, '/admin'));
    const page = keep(await fetchPage(stack, '/admin', { cookie }));
    const csrf = csrfOf(page.body);
    keep(await fetchPage(stack, '/admin/connectors/base', { cookie, form: { _csrf: csrf, enabled: 'on', tables: 'https://acme.feishu.cn/wiki/wikcnX?table=tblY' } }));
    keep(await fetchPage(stack, '/admin/connectors/base', { cookie, form: { _csrf: csrf, tables: 'not a url' } }));
    keep(await fetchPage(stack, '/admin/connectors/base', { cookie, form: { _csrf: 'wrong', tables: 'x y' } }));
    keep(await fetchPage(stack, '/admin/syncs', { cookie, form: { _csrf: csrf, module: 'base' } }));
    const [run] = await stack.larksync.services.sync.list(tenantKey, { limit: 1 });
    keep(await fetchPage(stack, `/admin/runs/${run!.id}.json`, { cookie }));
    keep(await fetchPage(stack, '/admin', { cookie }));
    keep(await fetchPage(stack, '/admin', { cookie: `larksync_session=${encodeURIComponent(`${sessionId}.forged`)}` }));
    keep(await fetchPage(stack, '/auth/lark/callback' + callback.search));
    // The database while the session lives (signing out deletes its row).
    const databaseSignedIn = await dumpDatabase();
    expect(databaseSignedIn).toContain('Sigrid Secret');
    keep(await fetchPage(stack, '/admin/sign-out', { cookie, form: { _csrf: csrf } }));
    keep(await fetchPage(stack, '/admin', { cookie }));
    // The REST API's view of grants.
    expect((await call('GET', `/api/v1/tenants/${tenantKey}/grants`)).text).toContain(user.openId);
    expect((await call('GET', `/api/v1/auth/lark/login-url?tenantKey=${tenantKey}`)).status).toBe(200);

    const secrets: Record<string, string[]> = {
      'user access token': [issued[0]!, refreshed[0]!],
      'user refresh token': [issued[1]!, refreshed[1]!],
      'authorization code': [callback.searchParams.get('code')!],
      'OAuth state': [callback.searchParams.get('state')!],
      'session id': [sessionId],
      'session cookie': [cookieValue],
    };
    for (const [what, values] of Object.entries(secrets)) for (const v of values) expect(v, what).toMatch(/^.{16,}$/);
    await stack.sim.settle();
    const everything = {
      logs: stack.logs.join(''),
      pages: pages.join('\n'),
      'API answers': answers.join('\n'),
      'database (signed in)': databaseSignedIn,
      database: await dumpDatabase(),
    };
    // The scans are real: the pages show the user, the log the sign-in, the database the grant.
    expect(everything.pages).toContain('Sigrid Secret');
    expect(everything.logs).toContain('user signed in: grant stored');
    expect(everything.database).toContain(user.openId);
    for (const [where, text] of Object.entries(everything)) {
      for (const [what, values] of Object.entries(secrets)) {
        for (const value of values) {
          expect(text.includes(value), `${what} found in ${where}`).toBe(false);
          expect(text.includes(Buffer.from(value).toString('hex')), `${what} (hex) found in ${where}`).toBe(false);
        }
      }
    }
  });
});
