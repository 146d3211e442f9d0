import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_APP, startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { call } from '../helpers/sync-api.js';

const TENANT = 'tenant-signin-1';
const OTHER = 'tenant-signin-2';

interface Hop {
  status: number;
  location: string | null;
  cookie: string | null;
  body: string;
}

async function get(url: string, cookie?: string): Promise<Hop> {
  const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  return { status: res.status, location: res.headers.get('location'), cookie: res.headers.get('set-cookie'), body: await res.text() };
}

describe('Sign in with Lark (OAuth code flow with PKCE)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
    await whenReady(stack);
    await openTenant(stack, TENANT);
    await openTenant(stack, OTHER);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  /** Starts a sign-in at larksync and answers Lark's authorize page as `openId` would. */
  async function signIn(openId: string, tenantKey: string, returnTo = '/admin'): Promise<{ start: Hop; callback: Hop; authorizeUrl: URL }> {
    const start = await get(`${stack.larksync.url}/auth/lark/login?returnTo=${encodeURIComponent(returnTo)}`);
    expect(start.status).toBe(302);
    const authorizeUrl = new URL(start.location!);
    const q = Object.fromEntries(authorizeUrl.searchParams) as Record<string, string>;
    const back = stack.sim.authorizeAs(STORE_APP.appId, { openId, tenantKey }, {
      redirect_uri: q.redirect_uri!,
      scope: q.scope,
      state: q.state,
      code_challenge: q.code_challenge,
      code_challenge_method: q.code_challenge_method as 'S256',
    });
    return { start, authorizeUrl, callback: await get(back) };
  }

  it('redirects to the authorize page with a single-use state and PKCE S256, exchanges the code, stores a grant and signs the user in', async () => {
    const user = stack.sim.addUser(TENANT, { name: 'Ada Admin', admin: true });
    const { authorizeUrl, callback } = await signIn(user.openId, TENANT);
    expect(authorizeUrl.origin).toBe(stack.sim.url);
    expect(authorizeUrl.pathname).toBe('/open-apis/authen/v1/authorize');
    expect(authorizeUrl.searchParams.get('client_id')).toBe(STORE_APP.appId);
    expect(authorizeUrl.searchParams.get('redirect_uri')).toBe(`${stack.larksync.url}/auth/lark/callback`);
    expect(authorizeUrl.searchParams.get('scope')?.split(' ')).toContain('offline_access');
    expect(authorizeUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorizeUrl.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);

    expect(callback.status).toBe(302);
    expect(callback.location).toBe('/admin');
    expect(callback.cookie).toMatch(/^larksync_session=[^;]+;.*HttpOnly/i);
    expect(callback.cookie).toMatch(/SameSite=Lax/i);

    const grants = await call<{ grants: Array<Record<string, unknown>> }>(stack, 'GET', `/api/v1/tenants/${TENANT}/grants`);
    expect(grants.status).toBe(200);
    expect(grants.body.grants).toHaveLength(1);
    expect(grants.body.grants[0]).toMatchObject({ openId: user.openId, name: 'Ada Admin', status: 'active', appId: STORE_APP.appId });
    expect(grants.body.grants[0]!.scopes).toContain('offline_access');
    expect(JSON.stringify(grants.body)).not.toMatch(/eyJ/);
    expect(stack.sim.oauth.codeExchangeCount({ openId: user.openId })).toBe(1);
  });

  it('answers a reused, forged or missing state, a declined consent and a failed exchange with a clear page, writing no grant', async () => {
    const before = (await stack.larksync.services.grants.list(TENANT)).length;
    const user = stack.sim.addUser(TENANT, { name: 'Bea Viewer' });
    const first = await signIn(user.openId, TENANT);
    expect(first.callback.status).toBe(302);
    // The same callback again: the state was used.
    const callbackUrl = new URL(stack.larksync.url + '/auth/lark/callback');
    const again = await get(`${stack.larksync.url}/auth/lark/callback?code=abc&state=${encodeURIComponent(new URL(first.authorizeUrl).searchParams.get('state')!)}`);
    expect(again.status).toBe(400);
    expect(again.body).toContain('no longer valid');
    for (const bad of ['', 'forged-state-value-that-larksync-never-issued', 'x'.repeat(50)]) {
      const page = await get(`${callbackUrl}?code=abc&state=${bad}`);
      expect(page.status, bad).toBe(400);
      expect(page.body).toContain('no longer valid');
    }
    // Declined on Lark's page.
    const start = await get(`${stack.larksync.url}/auth/lark/login`);
    const q = Object.fromEntries(new URL(start.location!).searchParams) as Record<string, string>;
    const denied = await get(
      stack.sim.authorizeAs(STORE_APP.appId, { openId: user.openId, tenantKey: TENANT }, { redirect_uri: q.redirect_uri!, scope: q.scope, state: q.state, code_challenge: q.code_challenge, code_challenge_method: 'S256' }, { deny: true }),
    );
    expect(denied.status).toBe(403);
    expect(denied.body).toContain('did not authorize');
    // A code Lark does not know.
    const start2 = await get(`${stack.larksync.url}/auth/lark/login`);
    const state2 = new URL(start2.location!).searchParams.get('state')!;
    const unknown = await get(`${callbackUrl}?code=not-a-code-lark-issued&state=${encodeURIComponent(state2)}`);
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatch(/Lark refused the authorization \(code \d+\)/);
    expect((await stack.larksync.services.grants.list(TENANT)).length).toBe(before + 1);
    // Nothing logged holds a code, a state or a token.
    const log = stack.logs.join('');
    expect(log).not.toContain('not-a-code-lark-issued');
    expect(log).not.toContain(state2);
  });

  it('refuses a user whose company has not installed the app, storing nothing', async () => {
    const stranger = stack.sim.addUser('tenant-never-installed', { name: 'Stranger' });
    stack.sim.installTenant(STORE_APP.appId, 'tenant-never-installed');
    const { callback } = await signIn(stranger.openId, 'tenant-never-installed');
    expect(callback.status).toBe(403);
    expect(callback.body).toContain('has not installed this app');
    expect(await stack.larksync.services.grants.list('tenant-never-installed')).toEqual([]);
  });

  it('gives an operator a login URL for a tenant, and lists and forgets grants over the API', async () => {
    const link = await call<{ url: string }>(stack, 'GET', `/api/v1/auth/lark/login-url?tenantKey=${OTHER}&returnTo=${encodeURIComponent('https://front.example.com/after')}`);
    expect(link.status).toBe(200);
    const q = Object.fromEntries(new URL(link.body.url).searchParams) as Record<string, string>;
    const user = stack.sim.addUser(OTHER, { name: 'Cy' });
    const back = await get(
      stack.sim.authorizeAs(STORE_APP.appId, { openId: user.openId, tenantKey: OTHER }, { redirect_uri: q.redirect_uri!, scope: q.scope, state: q.state, code_challenge: q.code_challenge, code_challenge_method: 'S256' }),
    );
    expect(back.status).toBe(302);
    expect(back.location).toBe('https://front.example.com/after');
    // No session for an operator's link: only the grant.
    expect(back.cookie).toBeNull();
    const list = await call<{ grants: Array<{ openId: string }> }>(stack, 'GET', `/api/v1/tenants/${OTHER}/grants`);
    expect(list.body.grants.map((g) => g.openId)).toEqual([user.openId]);
    expect((await stack.api('DELETE', `/api/v1/tenants/${OTHER}/grants/${user.openId}`)).status).toBe(204);
    expect((await stack.api('DELETE', `/api/v1/tenants/${OTHER}/grants/${user.openId}`)).status).toBe(404);
    expect((await call(stack, 'GET', `/api/v1/auth/lark/login-url?tenantKey=${OTHER}&returnTo=javascript:alert(1)`)).status).toBe(400);
    expect((await call(stack, 'GET', `/api/v1/auth/lark/login-url?tenantKey=tenant-nobody`)).status).toBe(404);
  });
});
