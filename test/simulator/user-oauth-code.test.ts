import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthorizePageError, OAUTH_PATHS, challengeFor, type SimLarkUser } from '../../simulator/oauth/index.js';
import {
  REDIRECT,
  authorizeUrl,
  exchange,
  getWith,
  parseForms,
  pkcePair,
  postToken,
  redirectParams,
  startOAuthSim,
  submit,
  type OAuthSim,
  type TokenBody,
} from './oauth-client.js';

// The authorization code flow over raw HTTP, checked against shared/lark/auth.md §5.1 (authorize
// page) and §5.2 (v2 token endpoint, its error table and HTTP statuses).

const TENANT = 'tk-oauth-code';
const SCOPES = ['offline_access', 'contact:user.base:readonly', 'bitable:app:readonly'];
const STORE = { appId: 'cli_oauth_code', appSecret: 'oauth-code-secret' };
const OTHER = { appId: 'cli_oauth_code_other', appSecret: 'oauth-code-other-secret' };

describe('simulator user sign-in: authorize page and authorization code exchange', () => {
  let s: OAuthSim;
  let alice: SimLarkUser;
  let directoryUser: SimLarkUser;

  beforeAll(async () => {
    s = await startOAuthSim(
      [
        { ...STORE, kind: 'store', verificationToken: 'vtok-code', redirectUris: [REDIRECT], scopes: SCOPES },
        { ...OTHER, kind: 'store', verificationToken: 'vtok-code-2', redirectUris: [REDIRECT], scopes: SCOPES },
      ],
      [
        [STORE.appId, TENANT],
        [OTHER.appId, TENANT],
      ],
    );
    alice = s.sim.addUser(TENANT, { name: 'Alice Example', email: 'alice@example.com' });
    directoryUser = s.sim.oauth.candidates(STORE.appId).find((u) => u.openId !== alice.openId)!;
  });
  afterAll(async () => {
    await s.stop();
  });

  /** A fresh code for `user` through the shortcut (no HTML). */
  const codeFor = (user: SimLarkUser, query: Record<string, string> = {}, app = STORE) =>
    redirectParams(s.sim.authorizeAs(app.appId, user, { redirect_uri: REDIRECT, scope: 'offline_access contact:user.base:readonly', state: 'st', ...query })).code!;

  it('full flow through the HTML page: pick a user, follow the redirect, exchange with PKCE S256, read user_info', async () => {
    const { verifier, challenge } = pkcePair();
    const page = await fetch(
      authorizeUrl(s.sim, {
        client_id: STORE.appId,
        redirect_uri: REDIRECT,
        scope: 'offline_access contact:user.base:readonly',
        state: 'csrf-123',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }),
    );
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const forms = parseForms(await page.text());
    // One form per person of the installing tenant: the registered user and the directory's active users.
    const offered = forms.filter((f) => f.attrs['data-open-id']).map((f) => f.attrs['data-open-id']);
    expect(offered).toContain(alice.openId);
    expect(offered).toContain(directoryUser.openId);
    expect(offered).toHaveLength(s.sim.oauth.candidates(STORE.appId).length);

    const aliceForm = forms.find((f) => f.attrs['data-open-id'] === alice.openId)!;
    const res = await submit(s.sim, aliceForm, 'Allow as Alice Example');
    expect(res.status).toBe(302);
    const location = res.headers.get('location')!;
    expect(location.startsWith(`${REDIRECT}?`)).toBe(true);
    const { code, state } = redirectParams(location);
    expect(state).toBe('csrf-123');
    expect(code).toMatch(/^[A-Za-z0-9_-]{64,}$/);

    const token = await exchange(s.sim, STORE, code!, { code_verifier: verifier });
    expect(token.status).toBe(200);
    expect(token.body).toMatchObject({
      code: 0,
      expires_in: 7200,
      refresh_token_expires_in: 604800,
      token_type: 'Bearer',
      scope: 'offline_access contact:user.base:readonly',
    });
    expect(token.body.access_token!.length).toBeGreaterThan(900);
    expect(token.body.access_token!.startsWith('eyJ')).toBe(true);
    expect(typeof token.body.refresh_token).toBe('string');
    expect(token.body.error).toBeUndefined();

    const info = await getWith(s.sim, token.body.access_token!, OAUTH_PATHS.userInfo);
    expect(info.status).toBe(200);
    expect(info.body.data).toMatchObject({ name: 'Alice Example', open_id: alice.openId, union_id: alice.unionId, email: 'alice@example.com', tenant_key: TENANT });
  });

  it('Deny redirects with error=access_denied and the state', async () => {
    const page = await fetch(authorizeUrl(s.sim, { client_id: STORE.appId, redirect_uri: REDIRECT, state: 'st-deny' }));
    const deny = parseForms(await page.text()).find((f) => f.buttons.some((b) => b.text === 'Deny'))!;
    const res = await submit(s.sim, deny, 'Deny');
    expect(res.status).toBe(302);
    const { error, state, code } = redirectParams(res.headers.get('location')!);
    expect({ error, state, code }).toEqual({ error: 'access_denied', state: 'st-deny', code: null });
  });

  it('pre-selects a user by query parameter or method: one form, Allow and Deny', async () => {
    const byQuery = await fetch(authorizeUrl(s.sim, { client_id: STORE.appId, redirect_uri: REDIRECT, sim_user: directoryUser.openId }));
    const [only, ...rest] = parseForms(await byQuery.text());
    expect(rest).toHaveLength(0);
    expect(only!.attrs['data-open-id']).toBe(directoryUser.openId);
    expect(only!.buttons.map((b) => b.text)).toEqual(['Allow', 'Deny']);
    const res = await submit(s.sim, only!, 'Allow');
    const { code, state } = redirectParams(res.headers.get('location')!);
    expect(state).toBeNull();
    const token = await exchange(s.sim, STORE, code!);
    expect(token.body.code).toBe(0);
    // No scope asked here, but scopes accumulate: nothing granted before for this user, so none.
    expect(token.body.scope).toBe('');
    expect(token.body.refresh_token).toBeUndefined();

    s.sim.oauth.preselect(STORE.appId, alice);
    try {
      const byMethod = await fetch(authorizeUrl(s.sim, { client_id: STORE.appId, redirect_uri: REDIRECT }));
      const forms = parseForms(await byMethod.text());
      expect(forms.map((f) => f.attrs['data-open-id'])).toEqual([alice.openId]);
    } finally {
      s.sim.oauth.preselect(STORE.appId, undefined);
    }
  });

  it('the page shows errors instead of redirecting: 20027 scope not enabled, 20029 redirect_uri, 20048 unknown app', async () => {
    const errorCode = async (query: Record<string, string>) => {
      const res = await fetch(authorizeUrl(s.sim, query), { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      return Number(/data-code="(\d+)"/.exec(await res.text())?.[1]);
    };
    expect(await errorCode({ client_id: STORE.appId, redirect_uri: REDIRECT, scope: 'offline_access mail:mail' })).toBe(20027);
    expect(await errorCode({ client_id: STORE.appId, redirect_uri: 'https://evil.example.com/cb' })).toBe(20029);
    expect(await errorCode({ client_id: STORE.appId, redirect_uri: `${REDIRECT}/extra` })).toBe(20029);
    expect(await errorCode({ client_id: 'cli_nobody', redirect_uri: REDIRECT })).toBe(20048);
    expect(await errorCode({ client_id: STORE.appId, redirect_uri: REDIRECT, code_challenge: 'x'.repeat(43), code_challenge_method: 'S512' })).toBe(20063);
    // The same checks on the shortcut.
    expect(() => s.sim.authorizeAs(STORE.appId, alice, { redirect_uri: REDIRECT, scope: 'mail:mail' })).toThrow(AuthorizePageError);
    expect(() => s.sim.authorizeAs(STORE.appId, { openId: 'ou_stranger', tenantKey: TENANT }, { redirect_uri: REDIRECT })).toThrow(/20010/);
    expect(() => s.sim.authorizeAs(STORE.appId, { ...alice, tenantKey: 'tk-not-installed' }, { redirect_uri: REDIRECT })).toThrow(/20010/);
  });

  it('a redirect allow-list set later applies to the next page', async () => {
    s.sim.setRedirectUris(OTHER.appId, [REDIRECT, 'http://127.0.0.1:9/cb']);
    const url = s.sim.authorizeAs(OTHER.appId, alice, { redirect_uri: 'http://127.0.0.1:9/cb', state: 'x' });
    expect(url.startsWith('http://127.0.0.1:9/cb?code=')).toBe(true);
  });

  it('the code exchange refuses per the §5.2 table, each with HTTP 400, error and error_description', async () => {
    const expectError = (res: { status: number; body: TokenBody }, code: number) => {
      expect(res.body.code).toBe(code);
      expect(res.status).toBe(400);
      expect(typeof res.body.error).toBe('string');
      expect(typeof res.body.error_description).toBe('string');
      expect(res.body.access_token).toBeUndefined();
    };
    const base = (code: string) => ({ grant_type: 'authorization_code', client_id: STORE.appId, client_secret: STORE.appSecret, code, redirect_uri: REDIRECT });

    expectError(await postToken(s.sim, { ...base(codeFor(alice)), client_secret: 'wrong' }), 20002);
    expectError(await postToken(s.sim, { ...base(codeFor(alice)), client_id: 'cli_nobody' }), 20002);
    expectError(await exchange(s.sim, STORE, 'A'.repeat(64)), 20003);

    const expiring = codeFor(alice);
    s.sim.advanceTime(301);
    expectError(await exchange(s.sim, STORE, expiring), 20004);

    const once = codeFor(alice);
    expect((await exchange(s.sim, STORE, once)).body.code).toBe(0);
    expectError(await exchange(s.sim, STORE, once), 20065);

    expectError(await exchange(s.sim, OTHER, codeFor(alice)), 20024);
    expectError(await exchange(s.sim, STORE, codeFor(alice), { redirect_uri: `${REDIRECT}?x=1` }), 20071);

    const { verifier, challenge } = pkcePair();
    const pkceCode = codeFor(alice, { code_challenge: challenge, code_challenge_method: 'S256' });
    expectError(await exchange(s.sim, STORE, pkceCode), 20049);
    expectError(await exchange(s.sim, STORE, pkceCode, { code_verifier: pkcePair().verifier }), 20049);
    expectError(await exchange(s.sim, STORE, pkceCode, { code_verifier: 'short' }), 20049);
    // A refused exchange leaves the code usable (simulator choice): the right verifier still works.
    expect((await exchange(s.sim, STORE, pkceCode, { code_verifier: verifier })).body.code).toBe(0);
    const plain = pkcePair().verifier;
    const plainCode = codeFor(alice, { code_challenge: challengeFor(plain, 'plain') });
    expect((await exchange(s.sim, STORE, plainCode, { code_verifier: plain })).body.code).toBe(0);

    expectError(await postToken(s.sim, base(codeFor(alice)), { basic: [STORE.appId, STORE.appSecret] }), 20070);
    const { client_secret: _secret, client_id: _id, ...withoutCreds } = base(codeFor(alice));
    expect((await postToken(s.sim, withoutCreds, { basic: [STORE.appId, STORE.appSecret] })).body.code).toBe(0);

    const { grant_type: _g, ...noGrant } = base(codeFor(alice));
    expectError(await postToken(s.sim, noGrant), 20001);
    const { code: _c, ...noCode } = base('');
    expectError(await postToken(s.sim, noCode), 20001);
    const { client_secret: _s, ...noSecret } = base(codeFor(alice));
    expectError(await postToken(s.sim, noSecret), 20001);
    const { redirect_uri: _r, ...noRedirect } = base(codeFor(alice));
    expectError(await postToken(s.sim, noRedirect), 20001);
    expectError(await postToken(s.sim, '{"grant_type": "authorization_code",'), 20063);
    expectError(await postToken(s.sim, JSON.stringify({ ...base(codeFor(alice)), code: 42 })), 20063);
    expectError(await postToken(s.sim, '[1,2]'), 20063);
    expectError(await postToken(s.sim, 'grant_type=authorization_code', { contentType: 'text/plain' }), 20063);
    expectError(await postToken(s.sim, { ...base(codeFor(alice)), grant_type: 'password' }), 20036);

    expectError(await exchange(s.sim, STORE, codeFor(alice), { scope: 'offline_access offline_access' }), 20067);
    expectError(await exchange(s.sim, STORE, codeFor(alice), { scope: 'bitable:app:readonly' }), 20068);
  });

  it('accepts a form-encoded body, narrows scope on request, and can answer code "0" as a string', async () => {
    const form = await postToken(
      s.sim,
      { grant_type: 'authorization_code', client_id: STORE.appId, client_secret: STORE.appSecret, code: codeFor(alice), redirect_uri: REDIRECT },
      { form: true },
    );
    expect(form.status).toBe(200);
    expect(form.body.code).toBe(0);

    const narrowed = await exchange(s.sim, STORE, codeFor(alice), { scope: 'contact:user.base:readonly' });
    expect(narrowed.body).toMatchObject({ code: 0, scope: 'contact:user.base:readonly' });
    expect(narrowed.body.refresh_token).toBeUndefined();

    s.sim.oauth.setOptions({ codeAsString: true, accessTokenTtlSeconds: 3600, refreshTokenTtlSeconds: 86400 });
    try {
      const str = await exchange(s.sim, STORE, codeFor(alice));
      expect(str.body).toMatchObject({ code: '0', expires_in: 3600, refresh_token_expires_in: 86400 });
    } finally {
      s.sim.oauth.setOptions({ codeAsString: false, accessTokenTtlSeconds: 7200, refreshTokenTtlSeconds: 604800 });
    }
  });

  it('counts code exchanges per user and in total', async () => {
    s.sim.oauth.resetCounts();
    await exchange(s.sim, STORE, codeFor(directoryUser));
    await exchange(s.sim, STORE, 'B'.repeat(64));
    expect(s.sim.oauth.codeExchangeCount()).toBe(2);
    expect(s.sim.oauth.codeExchangeCount({ openId: directoryUser.openId, code: 0 })).toBe(1);
    expect(s.sim.oauth.codeExchangeCount({ code: 20003 })).toBe(1);
  });
});
