import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AESCipher } from '@larksuiteoapi/node-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OAUTH_PATHS, type SimLarkUser } from '../../simulator/oauth/index.js';
import { signPush } from '../../src/lark/event-crypto.js';
import { REDIRECT, exchange, getWith, redirectParams, refresh, startOAuthSim, type OAuthSim, type TokenBody } from './oauth-client.js';

// Refresh rotation, revocation and the revocation push, over raw HTTP, checked against
// shared/lark/auth.md §5.2 and user-oauth.md §7 (single-use refresh tokens, ~1 minute grace for
// the previous access token, 7-day refresh tokens, the 365-day cap, 20050/20072 statuses).

const TENANT = 'tk-oauth-refresh';
const ENCRYPT_KEY = 'refresh-push-key-001';
const STORE = { appId: 'cli_oauth_refresh', appSecret: 'oauth-refresh-secret' };
const LOCKED = { appId: 'cli_oauth_refresh_locked', appSecret: 'oauth-refresh-locked-secret' };

describe('simulator user tokens: refresh rotation, faults, revocation', () => {
  let s: OAuthSim;
  let user: SimLarkUser;
  const received: Array<{ headers: IncomingHttpHeaders; body: Buffer }> = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"msg":"success"}');
    });
  });

  beforeAll(async () => {
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const eventUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/lark/events`;
    s = await startOAuthSim(
      [
        { ...STORE, kind: 'store', verificationToken: 'vtok-refresh', encryptKey: ENCRYPT_KEY, eventUrl, redirectUris: [REDIRECT] },
        { ...LOCKED, kind: 'store', verificationToken: 'vtok-locked', redirectUris: [REDIRECT], userTokenRefresh: false },
      ],
      [
        [STORE.appId, TENANT],
        [LOCKED.appId, TENANT],
      ],
    );
    user = s.sim.addUser(TENANT, { name: 'Rita Refresh' });
  });
  afterAll(async () => {
    await s.stop();
    await new Promise((resolve) => receiver.close(resolve));
  });

  /** A new grant (code exchange) for `who`, with offline_access. */
  const signIn = async (who: SimLarkUser = user, app = STORE): Promise<Required<Pick<TokenBody, 'access_token' | 'refresh_token'>>> => {
    const { code } = redirectParams(s.sim.authorizeAs(app.appId, who, { redirect_uri: REDIRECT, scope: 'offline_access bitable:app:readonly' }));
    const res = await exchange(s.sim, app, code!);
    expect(res.body.code).toBe(0);
    return { access_token: res.body.access_token!, refresh_token: res.body.refresh_token! };
  };
  const userInfo = (token: string) => getWith(s.sim, token, OAUTH_PATHS.userInfo);

  it('rotates: a new refresh token each time, the old one dead at once, the old access token valid ~60 s then not', async () => {
    const first = await signIn();
    const grant = s.sim.oauth.grantOf(first.access_token)!;
    const second = await refresh(s.sim, STORE, first.refresh_token);
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ code: 0, expires_in: 7200, refresh_token_expires_in: 604800, token_type: 'Bearer', scope: 'offline_access bitable:app:readonly' });
    expect(second.body.refresh_token).not.toBe(first.refresh_token);
    expect(second.body.access_token).not.toBe(first.access_token);

    const reused = await refresh(s.sim, STORE, first.refresh_token);
    expect(reused.status).toBe(400);
    expect(reused.body).toMatchObject({ code: 20064, error: 'invalid_grant' });

    s.sim.advanceTime(30);
    expect((await userInfo(first.access_token)).body.code).toBe(0);
    s.sim.advanceTime(31);
    const stale = await userInfo(first.access_token);
    expect(stale.status).toBe(400);
    expect(stale.body.code).toBe(99991677);
    expect((await userInfo(second.body.access_token!)).body.code).toBe(0);

    // The chain goes on from the newest refresh token.
    const third = await refresh(s.sim, STORE, second.body.refresh_token!);
    expect(third.body.code).toBe(0);
    expect(s.sim.oauth.grant(grant.id)!.refreshes).toBe(2);
    expect(s.sim.oauth.refreshCount({ grantId: grant.id })).toBe(3);
    expect(s.sim.oauth.refreshCount({ grantId: grant.id, code: 0 })).toBe(2);
  });

  it('concurrent refreshes with one token: exactly one wins, the other gets 20064, and the winner chain lives on', async () => {
    const { refresh_token } = await signIn();
    const grantId = s.sim.oauth.grantOf(refresh_token)!.id;
    const results = await Promise.all([refresh(s.sim, STORE, refresh_token), refresh(s.sim, STORE, refresh_token), refresh(s.sim, STORE, refresh_token)]);
    const winners = results.filter((r) => r.body.code === 0);
    const losers = results.filter((r) => r.body.code !== 0);
    expect(winners).toHaveLength(1);
    expect(losers.map((r) => [r.status, r.body.code])).toEqual([
      [400, 20064],
      [400, 20064],
    ]);
    expect(s.sim.oauth.refreshCount({ grantId })).toBe(3);
    expect(s.sim.oauth.refreshCount({ grantId, code: 0 })).toBe(1);
    expect((await refresh(s.sim, STORE, winners[0]!.body.refresh_token!)).body.code).toBe(0);
  });

  it('answers 20073 for a reused refresh token when configured so', async () => {
    const { refresh_token } = await signIn();
    expect((await refresh(s.sim, STORE, refresh_token)).body.code).toBe(0);
    s.sim.oauth.setOptions({ refreshReuseCode: 20073 });
    try {
      expect((await refresh(s.sim, STORE, refresh_token)).body.code).toBe(20073);
    } finally {
      s.sim.oauth.setOptions({ refreshReuseCode: 20064 });
    }
  });

  it('a refresh token past its own expiry answers 20037; lifetimes are configurable', async () => {
    s.sim.oauth.setOptions({ refreshTokenTtlSeconds: 100, accessTokenTtlSeconds: 50 });
    try {
      const { refresh_token } = await signIn();
      const ok = await refresh(s.sim, STORE, refresh_token);
      expect(ok.body).toMatchObject({ code: 0, expires_in: 50, refresh_token_expires_in: 100 });
      s.sim.advanceTime(101);
      const late = await refresh(s.sim, STORE, ok.body.refresh_token!);
      expect(late.status).toBe(400);
      expect(late.body.code).toBe(20037);
    } finally {
      s.sim.oauth.setOptions({ refreshTokenTtlSeconds: 604800, accessTokenTtlSeconds: 7200 });
    }
  });

  it('refreshing every 6 days keeps a grant alive until 365 days after the authorization, then 20037', async () => {
    let { refresh_token } = await signIn();
    const day = 86_400;
    let last: Awaited<ReturnType<typeof refresh>> | undefined;
    for (let elapsed = 6; elapsed <= 360; elapsed += 6) {
      s.sim.advanceTime(6 * day);
      last = await refresh(s.sim, STORE, refresh_token);
      expect(last.body.code).toBe(0);
      refresh_token = last.body.refresh_token!;
    }
    // Day 360: the new refresh token cannot outlive day 365.
    // (The simulator's clock also runs in real time: allow a few seconds.)
    expect(last!.body.refresh_token_expires_in).toBeLessThanOrEqual(5 * day);
    expect(last!.body.refresh_token_expires_in).toBeGreaterThan(5 * day - 10);
    s.sim.advanceTime(4 * day);
    const day364 = await refresh(s.sim, STORE, refresh_token);
    expect(day364.body.code).toBe(0);
    expect(day364.body.refresh_token_expires_in).toBeGreaterThan(day - 10);
    s.sim.advanceTime(day + 1);
    const capped = await refresh(s.sim, STORE, day364.body.refresh_token!);
    expect(capped.status).toBe(400);
    expect(capped.body.code).toBe(20037);
    expect(capped.body.error_description).toMatch(/365 days/);
  });

  it('fault hooks: the next refreshes answer 20050 (HTTP 500) and 20072 (HTTP 503) without rotating', async () => {
    const { refresh_token } = await signIn();
    const grantId = s.sim.oauth.grantOf(refresh_token)!.id;
    s.sim.oauth.failNextRefreshes(1, 20050);
    s.sim.oauth.failNextRefreshes(1, 20072);
    const a = await refresh(s.sim, STORE, refresh_token);
    expect(a.status).toBe(500);
    expect(a.body).toMatchObject({ code: 20050, error: 'server_error' });
    const b = await refresh(s.sim, STORE, refresh_token);
    expect(b.status).toBe(503);
    expect(b.body.code).toBe(20072);
    expect((await refresh(s.sim, STORE, refresh_token)).body.code).toBe(0);
    expect(s.sim.oauth.refreshCount({ grantId })).toBe(3);
    expect(s.sim.oauth.refreshCount({ grantId, code: 20050 })).toBe(1);
  });

  it('refuses unknown (20026) and foreign (20024) refresh tokens, missing fields (20001), and a switched-off app (20074)', async () => {
    const { refresh_token } = await signIn();
    expect((await refresh(s.sim, STORE, 'v1-style-refresh-token')).body.code).toBe(20026);
    expect((await refresh(s.sim, LOCKED, refresh_token)).body.code).toBe(20074);
    s.sim.getApp(LOCKED.appId).userTokenRefresh = true;
    expect((await refresh(s.sim, LOCKED, refresh_token)).body.code).toBe(20024);
    expect((await refresh(s.sim, STORE, '')).body.code).toBe(20001);
    expect((await refresh(s.sim, STORE, refresh_token, { scope: 'contact:user.base:readonly' })).body.code).toBe(20068);
    // Narrowing without offline_access: an access token only, and the chain ends there.
    const narrowed = await refresh(s.sim, STORE, refresh_token, { scope: 'bitable:app:readonly' });
    expect(narrowed.body).toMatchObject({ code: 0, scope: 'bitable:app:readonly' });
    expect(narrowed.body.refresh_token).toBeUndefined();
  });

  it('revocation kills every token of the grant: 20064 on refresh, 99991668 on API calls; the push decrypts with the SDK', async () => {
    const other = s.sim.addUser(TENANT, { name: 'Otto Other' });
    const mine = await signIn();
    const theirs = await signIn(other);
    received.length = 0;
    const pushed = await s.sim.revokeUserTokens(STORE.appId, user.openId, { push: true });
    expect(pushed?.status).toBe(200);

    const dead = await refresh(s.sim, STORE, mine.refresh_token);
    expect([dead.status, dead.body.code]).toEqual([400, 20064]);
    const api = await userInfo(mine.access_token);
    expect([api.status, api.body.code]).toEqual([400, 99991668]);
    // Another user's grant is untouched.
    expect((await userInfo(theirs.access_token)).body.code).toBe(0);
    expect((await refresh(s.sim, STORE, theirs.refresh_token)).body.code).toBe(0);

    expect(received).toHaveLength(1);
    const { headers, body } = received[0]!;
    const timestamp = String(headers['x-lark-request-timestamp']);
    const nonce = String(headers['x-lark-request-nonce']);
    expect(headers['x-lark-signature']).toBe(signPush(timestamp, nonce, ENCRYPT_KEY, body));
    const outer = JSON.parse(body.toString('utf8')) as { encrypt: string };
    const event = JSON.parse(new AESCipher(ENCRYPT_KEY).decrypt(outer.encrypt)) as {
      schema: string;
      header: Record<string, string>;
      event: Record<string, string>;
    };
    expect(event.schema).toBe('2.0');
    expect(event.header).toMatchObject({
      event_id: pushed!.uuid,
      token: 'vtok-refresh',
      event_type: 'auth.user_access_token.revoked_v4',
      tenant_key: TENANT,
      app_id: STORE.appId,
    });
    expect(event.event).toMatchObject({ open_id: user.openId, union_id: user.unionId });
    expect(typeof event.event.revoke_token_type).toBe('string');
    expect(typeof event.event.revoke_reason).toBe('string');
    // A store app gets no user_id (custom-app-only, as for other events).
    expect(event.event.user_id).toBeUndefined();

    // Signing in again starts a new, working grant.
    const again = await signIn();
    expect((await userInfo(again.access_token)).body.code).toBe(0);
  });
});
