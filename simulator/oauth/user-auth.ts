import { randomBytes, randomUUID } from 'node:crypto';
import type { LarkSimulator, PushResult, SimApp } from '../lark-simulator.js';
import { verifierMatches, type ChallengeMethod } from './pkce.js';
import { SimUserRegistry, type NewSimUser, type SimLarkUser } from './users.js';

/**
 * User access tokens, OAuth 2.0 authorization code flow (../shared/lark/auth.md §5,
 * user-oauth.md §7): the authorize request, codes, grants (one per code exchange: the chain of
 * access and refresh tokens that follows), rotation on refresh, revocation, and the checks data
 * APIs make on a user token. No HTTP here: routes.ts and page.ts speak the wire format.
 */

export interface OAuthOptions {
  /** `expires_in` of a user access token (docs example 7200 s; "not fixed"). */
  accessTokenTtlSeconds: number;
  /** `refresh_token_expires_in` (docs example 604800 s = 7 days; "not fixed"). */
  refreshTokenTtlSeconds: number;
  /** How long the previous access token keeps working after a refresh ("about 1 minute"). */
  rotationGraceSeconds: number;
  /** Authorization codes are valid 5 minutes. */
  codeTtlSeconds: number;
  /** Refreshing stops this long after the user's authorisation (365 days; 20037 after). */
  grantMaxAgeSeconds: number;
  /**
   * The code for a refresh token that was already rotated away. The docs list both 20064
   * ("revoked", which the field report of a lost concurrent refresh shows) and 20073 ("already
   * used"); the simulator answers 20064 by default (user-oauth.md §7, corrections.md) and a test
   * may switch to 20073. Revocation always answers 20064.
   */
  refreshReuseCode: 20064 | 20073;
  /** Answer success as `"code": "0"` (a string, as the docs' examples show) instead of `0`. */
  codeAsString: boolean;
  /** How long an authorize page's consent form stays usable (simulator choice). */
  consentTtlSeconds: number;
}

export const defaultOAuthOptions: OAuthOptions = {
  accessTokenTtlSeconds: 7200,
  refreshTokenTtlSeconds: 604_800,
  rotationGraceSeconds: 60,
  codeTtlSeconds: 300,
  grantMaxAgeSeconds: 365 * 86_400,
  refreshReuseCode: 20064,
  codeAsString: false,
  consentTtlSeconds: 600,
};

/** The authorize page's query (auth.md §5.1). */
export interface AuthorizeQuery {
  client_id?: string;
  redirect_uri?: string;
  scope?: string;
  state?: string;
  code_challenge?: string;
  code_challenge_method?: string;
}

/** A validated authorize request, waiting for the user's decision. */
export interface AuthorizeRequest {
  appId: string;
  redirectUri: string;
  scopes: string[];
  state: string | undefined;
  challenge: { value: string; method: ChallengeMethod } | undefined;
}

/** A user as the simulator names one: the tenant and the open_id within it. */
export interface UserRef {
  openId: string;
  tenantKey: string;
}

/**
 * An error the authorize page shows to the user instead of redirecting (auth.md §5.1: 20027 for a
 * scope the app has not enabled; the other codes are the simulator's choices, see validate()).
 */
export class AuthorizePageError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export interface SimGrant {
  id: string;
  appId: string;
  tenantKey: string;
  openId: string;
  /** The scopes the user had granted the app when this chain began. */
  scopes: string[];
  authorizedAt: number;
  revoked: boolean;
  /** Successful refreshes of this chain. */
  refreshes: number;
}

interface AccessTokenRecord {
  grantId: string;
  expiresAt: number;
  scopes: string[];
}

interface RefreshTokenRecord {
  grantId: string;
  expiresAt: number;
  /** When it was rotated away (single use). */
  usedAt: number | undefined;
}

interface CodeRecord {
  appId: string;
  tenantKey: string;
  openId: string;
  redirectUri: string;
  scopes: string[];
  challenge: AuthorizeRequest['challenge'];
  expiresAt: number;
  usedAt: number | undefined;
}

/** One call of the v2 token endpoint, as the simulator answered it. */
export interface UserTokenCall {
  grantType: string;
  appId: string | undefined;
  /** The grant the code or refresh token belonged to, when it was known. */
  grantId: string | undefined;
  openId: string | undefined;
  tenantKey: string | undefined;
  /** The answer's code (0 = success). */
  code: number;
  at: number;
}

export interface TokenCallFilter {
  appId?: string;
  openId?: string;
  tenantKey?: string;
  grantId?: string;
  code?: number;
}

/** The caller behind a valid user access token. */
export interface UserCaller {
  appId: string;
  tenantKey: string;
  user: SimLarkUser;
  grantId: string;
  scopes: string[];
}

/** Why a user token is refused on an API call (auth.md §6). */
export type UserTokenProblem = { code: 99991668 | 99991677; msg: string };

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** RFC 6749 `error` strings per code. Only `server_error` is documented (auth.md §7); the rest follow RFC 6749 §5.2. */
const ERROR_NAMES: Record<number, string> = {
  20001: 'invalid_request',
  20002: 'invalid_client',
  20003: 'invalid_grant',
  20004: 'invalid_grant',
  20009: 'invalid_grant',
  20024: 'invalid_grant',
  20026: 'invalid_grant',
  20036: 'unsupported_grant_type',
  20037: 'invalid_grant',
  20049: 'invalid_grant',
  20050: 'server_error',
  20063: 'invalid_request',
  20064: 'invalid_grant',
  20065: 'invalid_grant',
  20067: 'invalid_scope',
  20068: 'invalid_scope',
  20070: 'invalid_request',
  20071: 'invalid_grant',
  20072: 'temporarily_unavailable',
  20073: 'invalid_grant',
  20074: 'unauthorized_client',
};

/** auth.md §5.2: every error is HTTP 400 except 20050 (500) and 20072 (503). */
const statusOf = (code: number) => (code === 20050 ? 500 : code === 20072 ? 503 : 400);

export function oauthError(code: number, description: string): Answer {
  return { status: statusOf(code), body: { code, error: ERROR_NAMES[code] ?? 'invalid_request', error_description: description } };
}

/**
 * A token shaped like the docs' examples: a JWT-style string beginning `eyJ`, about 1 KB (the docs
 * say 1–2 KB and advise reserving 4 KB). Opaque to clients; the simulator looks it up by value.
 */
function mintTokenValue(kind: 'access' | 'refresh'): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const header = b64(JSON.stringify({ alg: 'ES256', kid: 'sim-1', typ: 'JWT' }));
  const payload = b64(JSON.stringify({ jti: randomUUID(), kind, sim: randomBytes(560).toString('base64url') }));
  return `${header}.${payload}.${randomBytes(64).toString('base64url')}`;
}

/** 64 characters of `[A-Za-z0-9_-]` (auth.md §5.1: reserve at least 64). */
const mintCode = () => randomBytes(48).toString('base64url');

const splitScopes = (raw: string | undefined) => (raw ?? '').split(' ').filter((s) => s !== '');

export class UserAuth {
  readonly users = new SimUserRegistry();
  readonly options: OAuthOptions;
  /** Every call of the v2 token endpoint, oldest first. */
  readonly tokenCalls: UserTokenCall[] = [];
  private readonly consents = new Map<string, { request: AuthorizeRequest; expiresAt: number }>();
  private readonly codes = new Map<string, CodeRecord>();
  private readonly grants = new Map<string, SimGrant>();
  private readonly accessTokens = new Map<string, AccessTokenRecord>();
  private readonly refreshTokens = new Map<string, RefreshTokenRecord>();
  /** `appId|tenantKey|openId` -> scopes the user has granted the app (they accumulate). */
  private readonly granted = new Map<string, Set<string>>();
  private readonly refreshFaults: Array<{ code: 20050 | 20072; remaining: number }> = [];
  private preselected = new Map<string, UserRef>();

  constructor(
    private readonly sim: LarkSimulator,
    options: Partial<OAuthOptions> = {},
  ) {
    this.options = { ...defaultOAuthOptions, ...options };
  }

  setOptions(patch: Partial<OAuthOptions>): void {
    Object.assign(this.options, Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)));
  }

  // ---------------------------------------------------------------- who may sign in

  /** The users the authorize page offers for an app: active people of every tenant it is installed in. */
  candidates(appId: string): SimLarkUser[] {
    return this.sim.installedTenants(appId).flatMap((t) => this.users.list(t).filter((u) => u.active));
  }

  /** Makes the app's authorize page show this user alone (one Allow button), until cleared. */
  preselect(appId: string, user: UserRef | undefined): void {
    if (user) this.preselected.set(appId, user);
    else this.preselected.delete(appId);
  }

  preselectedFor(appId: string): UserRef | undefined {
    return this.preselected.get(appId);
  }

  private eligible(appId: string, ref: UserRef): SimLarkUser | undefined {
    if (!this.sim.installedTenants(appId).includes(ref.tenantKey)) return undefined;
    const u = this.users.find(ref.tenantKey, ref.openId);
    return u?.active ? u : undefined;
  }

  // ---------------------------------------------------------------- the authorize page

  /**
   * Validates the authorize page's query. Error codes: 20027 for a scope the app has not enabled
   * (auth.md §5.1); 20029 for a redirect_uri outside the allow-list (Feishu's FAQ page "How to
   * resolve the authorization page 20029 error", not in the shared notes); the rest are the
   * simulator's choices from the token endpoint's table: 20001 for a missing client_id or
   * redirect_uri, 20048 for an unknown app, 20063 for an unknown code_challenge_method.
   */
  validate(query: AuthorizeQuery): AuthorizeRequest {
    if (!query.client_id) throw new AuthorizePageError(20001, 'client_id is required');
    const app = this.sim.findApp(query.client_id);
    if (!app) throw new AuthorizePageError(20048, 'app does not exist');
    if (!query.redirect_uri) throw new AuthorizePageError(20001, 'redirect_uri is required');
    // Matching rule unconfirmed (exact, prefix, or host?): the simulator takes exact strings, the
    // strictest reading, so a client that sends a different URL than it registered finds out here.
    if (!(app.redirectUris ?? []).includes(query.redirect_uri) || !URL.canParse(query.redirect_uri)) {
      throw new AuthorizePageError(20029, 'redirect_uri request is illegal');
    }
    const scopes = [...new Set(splitScopes(query.scope))];
    // An app without a scope list is treated as having enabled whatever it asks for.
    const missing = app.scopes ? scopes.filter((s) => !app.scopes!.includes(s)) : [];
    if (missing.length > 0) throw new AuthorizePageError(20027, `the app has not enabled these scopes: ${missing.join(' ')}`);
    let challenge: AuthorizeRequest['challenge'];
    if (query.code_challenge) {
      const method = query.code_challenge_method ?? 'plain';
      if (method !== 'S256' && method !== 'plain') throw new AuthorizePageError(20063, 'code_challenge_method must be S256 or plain');
      challenge = { value: query.code_challenge, method };
    }
    return { appId: app.appId, redirectUri: query.redirect_uri, scopes, state: query.state, challenge };
  }

  /** Keeps a validated request for the consent form; returns the form's id. */
  openConsent(request: AuthorizeRequest): string {
    const now = this.sim.now();
    for (const [id, c] of this.consents) if (c.expiresAt <= now) this.consents.delete(id);
    const id = randomBytes(18).toString('base64url');
    this.consents.set(id, { request, expiresAt: now + this.options.consentTtlSeconds * 1000 });
    return id;
  }

  /** The user's decision on a consent form; returns the redirect URL. */
  decide(consentId: string, decision: 'allow' | 'deny', user: UserRef | undefined): string {
    const consent = this.consents.get(consentId);
    if (!consent || consent.expiresAt <= this.sim.now()) throw new AuthorizePageError(20063, 'this authorization page has expired; open it again');
    if (decision === 'allow' && !user) throw new AuthorizePageError(20063, 'choose a user');
    const url = this.redirect(consent.request, decision === 'deny' ? undefined : user);
    this.consents.delete(consentId);
    return url;
  }

  /**
   * The page's answer without the page: validates `query` for `appId` and returns where the
   * browser would go, `redirect_uri?code=…&state=…` (or `?error=access_denied&state=…` with
   * `deny`). Throws AuthorizePageError where the page would show an error.
   */
  authorizeAs(appId: string, user: UserRef, query: Omit<AuthorizeQuery, 'client_id'>, opts: { deny?: boolean } = {}): string {
    const request = this.validate({ ...query, client_id: appId });
    return this.redirect(request, opts.deny ? undefined : user);
  }

  /** `user` undefined = denied. */
  private redirect(request: AuthorizeRequest, user: UserRef | undefined): string {
    const url = new URL(request.redirectUri);
    if (!user) {
      url.searchParams.set('error', 'access_denied');
    } else {
      const who = this.eligible(request.appId, user);
      if (!who) throw new AuthorizePageError(20010, `user ${user.openId} of ${user.tenantKey} may not use this app`);
      // Scopes granted by a user accumulate across authorisations (auth.md §5.1).
      const key = `${request.appId}|${who.tenantKey}|${who.openId}`;
      const granted = this.granted.get(key) ?? new Set<string>();
      for (const s of request.scopes) granted.add(s);
      this.granted.set(key, granted);
      const code = mintCode();
      this.codes.set(code, {
        appId: request.appId,
        tenantKey: who.tenantKey,
        openId: who.openId,
        redirectUri: request.redirectUri,
        scopes: [...granted],
        challenge: request.challenge,
        expiresAt: this.sim.now() + this.options.codeTtlSeconds * 1000,
        usedAt: undefined,
      });
      url.searchParams.set('code', code);
    }
    if (request.state !== undefined) url.searchParams.set('state', request.state);
    return url.toString();
  }

  // ---------------------------------------------------------------- the token endpoint

  /** The next `count` refresh_token grants answer `code` (20050 → HTTP 500, 20072 → 503) and rotate nothing. */
  failNextRefreshes(count: number, code: 20050 | 20072 = 20050): void {
    this.refreshFaults.push({ code, remaining: count });
  }

  /**
   * `POST /open-apis/authen/v2/oauth/token` (auth.md §5.2) on a parsed body. `basic` is the
   * decoded `Authorization: Basic` header, if any; `malformed` when the body could not be read.
   */
  token(body: Record<string, unknown> | 'malformed', basic: { clientId: string; clientSecret: string } | 'malformed' | undefined): Answer {
    const grantType = body !== 'malformed' && typeof body.grant_type === 'string' ? body.grant_type : '';
    const call: UserTokenCall = { grantType, appId: undefined, grantId: undefined, openId: undefined, tenantKey: undefined, code: 0, at: this.sim.now() };
    const answer = this.answerToken(body, basic, call);
    call.code = typeof answer.body.code === 'number' ? answer.body.code : 0;
    this.tokenCalls.push(call);
    return answer;
  }

  private answerToken(
    body: Record<string, unknown> | 'malformed',
    basic: { clientId: string; clientSecret: string } | 'malformed' | undefined,
    call: UserTokenCall,
  ): Answer {
    // Which of 20001 / 20063 Lark uses where is not documented. The simulator: a body that is not
    // a JSON object or form, or a field that is not a string, is malformed (20063); a required
    // field that is absent or empty is missing (20001).
    if (body === 'malformed' || basic === 'malformed') return oauthError(20063, 'malformed request');
    for (const [k, v] of Object.entries(body)) if (typeof v !== 'string') return oauthError(20063, `${k} must be a string`);
    const field = (k: string) => (body[k] as string | undefined) || undefined;
    // Basic auth alone is accepted as the client's credentials (20070 implies it is supported;
    // unconfirmed); with client_secret in the body as well it is 20070.
    if (basic && field('client_secret') !== undefined) return oauthError(20070, 'client_secret is sent both in the body and as Basic auth');
    const grantType = field('grant_type');
    if (!grantType) return oauthError(20001, 'grant_type is required');
    if (grantType !== 'authorization_code' && grantType !== 'refresh_token') return oauthError(20036, `unsupported grant_type ${grantType}`);
    const clientId = field('client_id') ?? basic?.clientId;
    const clientSecret = field('client_secret') ?? basic?.clientSecret;
    if (!clientId) return oauthError(20001, 'client_id is required');
    if (!clientSecret) return oauthError(20001, 'client_secret is required');
    if (basic && field('client_id') && field('client_id') !== basic.clientId) return oauthError(20002, 'client_id differs from the Basic auth client');
    // An unknown client_id is 20002 as well ("bad client_id/client_secret", auth.md §5.2); 20048
    // ("app does not exist") is left to the authorize page, so the endpoint does not reveal which apps exist.
    const app = this.sim.findApp(clientId);
    if (!app || app.appSecret !== clientSecret) return oauthError(20002, 'client_id or client_secret is invalid');
    call.appId = app.appId;
    return grantType === 'authorization_code' ? this.exchangeCode(app, field, call) : this.refresh(app, field, call);
  }

  private exchangeCode(app: SimApp, field: (k: string) => string | undefined, call: UserTokenCall): Answer {
    const value = field('code');
    if (!value) return oauthError(20001, 'code is required');
    const code = this.codes.get(value);
    if (!code) return oauthError(20003, 'authorization code not found');
    call.openId = code.openId;
    call.tenantKey = code.tenantKey;
    if (code.appId !== app.appId) return oauthError(20024, 'the authorization code belongs to another client_id');
    if (code.usedAt !== undefined) return oauthError(20065, 'authorization code already used');
    if (code.expiresAt <= this.sim.now()) return oauthError(20004, 'authorization code expired');
    // Whether a refused exchange (bad redirect_uri, verifier or scope) burns the code is not
    // documented; the simulator keeps it usable until it succeeds or expires.
    const redirectUri = field('redirect_uri');
    if (!redirectUri) return oauthError(20001, 'redirect_uri is required');
    if (redirectUri !== code.redirectUri) return oauthError(20071, 'redirect_uri does not match the authorize request');
    if (code.challenge) {
      const verifier = field('code_verifier');
      if (!verifier || !verifierMatches(verifier, code.challenge.value, code.challenge.method)) {
        return oauthError(20049, 'PKCE verification failed');
      }
    }
    // A code_verifier without a challenge on the authorize page is ignored (unconfirmed).
    const scopes = this.narrow(code.scopes, field('scope'));
    if ('status' in scopes) return scopes;
    if (!this.sim.installedTenants(app.appId).includes(code.tenantKey)) return oauthError(20009, 'the app is not installed in this tenant');
    code.usedAt = this.sim.now();
    const grant: SimGrant = {
      id: `grant_${randomBytes(8).toString('hex')}`,
      appId: app.appId,
      tenantKey: code.tenantKey,
      openId: code.openId,
      scopes: code.scopes,
      authorizedAt: this.sim.now(),
      revoked: false,
      refreshes: 0,
    };
    this.grants.set(grant.id, grant);
    call.grantId = grant.id;
    return this.issue(grant, scopes);
  }

  private refresh(app: SimApp, field: (k: string) => string | undefined, call: UserTokenCall): Answer {
    const value = field('refresh_token');
    const record = value ? this.refreshTokens.get(value) : undefined;
    const grant = record ? this.grants.get(record.grantId) : undefined;
    if (grant) {
      call.grantId = grant.id;
      call.openId = grant.openId;
      call.tenantKey = grant.tenantKey;
    }
    const fault = this.refreshFaults.find((f) => f.remaining > 0);
    if (fault) {
      fault.remaining -= 1;
      if (this.refreshFaults.every((f) => f.remaining === 0)) this.refreshFaults.length = 0;
      return oauthError(fault.code, fault.code === 20050 ? 'internal server error, please retry' : 'service temporarily unavailable, please retry');
    }
    if (app.userTokenRefresh === false) return oauthError(20074, 'the app may not refresh user_access_token (security setting)');
    if (!value) return oauthError(20001, 'refresh_token is required');
    if (!record || !grant) return oauthError(20026, 'refresh_token is invalid');
    if (grant.appId !== app.appId) return oauthError(20024, 'the refresh_token belongs to another client_id');
    if (grant.revoked) return oauthError(20064, 'refresh_token has been revoked');
    // Rotated away already (single use): a lost concurrent refresh lands here. The winner's tokens
    // stay valid (what the official CLI's fix relies on, user-oauth.md §7).
    if (record.usedAt !== undefined) {
      const code = this.options.refreshReuseCode;
      return oauthError(code, code === 20064 ? 'refresh_token has been revoked: a refresh token can only be used once' : 'refresh_token has been used');
    }
    const now = this.sim.now();
    if (now - grant.authorizedAt >= this.options.grantMaxAgeSeconds * 1000) {
      return oauthError(20037, 'refresh_token has expired: the authorization is older than 365 days; authorize again');
    }
    if (record.expiresAt <= now) return oauthError(20037, 'refresh_token has expired');
    if (!this.sim.installedTenants(app.appId).includes(grant.tenantKey)) return oauthError(20009, 'the app is not installed in this tenant');
    const scopes = this.narrow(grant.scopes, field('scope'));
    if ('status' in scopes) return scopes;
    record.usedAt = now;
    // The previous access tokens keep working for the grace, then stop (auth.md §5.2).
    const graceEnd = now + this.options.rotationGraceSeconds * 1000;
    for (const t of this.accessTokens.values()) if (t.grantId === grant.id && t.expiresAt > graceEnd) t.expiresAt = graceEnd;
    grant.refreshes += 1;
    return this.issue(grant, scopes);
  }

  /** The `scope` narrowing of §5.2: a subset of what was granted, no duplicates; it does not accumulate. */
  private narrow(granted: string[], raw: string | undefined): string[] | Answer {
    if (raw === undefined) return granted;
    const asked = splitScopes(raw);
    if (new Set(asked).size !== asked.length) return oauthError(20067, 'duplicate scopes in scope');
    const extra = asked.filter((s) => !granted.includes(s));
    if (extra.length > 0) return oauthError(20068, `scope not granted by the user: ${extra.join(' ')}`);
    return asked;
  }

  private issue(grant: SimGrant, scopes: string[]): Answer {
    const now = this.sim.now();
    const access = mintTokenValue('access');
    this.accessTokens.set(access, { grantId: grant.id, expiresAt: now + this.options.accessTokenTtlSeconds * 1000, scopes });
    const body: Record<string, unknown> = {
      code: this.options.codeAsString ? '0' : 0,
      access_token: access,
      expires_in: this.options.accessTokenTtlSeconds,
    };
    // A refresh token only with offline_access (and, when scope narrows, only if it keeps it).
    if (scopes.includes('offline_access')) {
      // It cannot outlive the 365-day cap: near the end refresh_token_expires_in shrinks to what
      // is left (the docs only say the value is "not fixed"; unconfirmed).
      const capLeft = Math.floor((grant.authorizedAt + this.options.grantMaxAgeSeconds * 1000 - now) / 1000);
      const ttl = Math.max(0, Math.min(this.options.refreshTokenTtlSeconds, capLeft));
      const refresh = mintTokenValue('refresh');
      this.refreshTokens.set(refresh, { grantId: grant.id, expiresAt: now + ttl * 1000, usedAt: undefined });
      body.refresh_token = refresh;
      body.refresh_token_expires_in = ttl;
    }
    body.token_type = 'Bearer';
    body.scope = scopes.join(' ');
    return { status: 200, body };
  }

  // ---------------------------------------------------------------- user tokens on API calls

  /** The caller behind a user access token, or why it is refused; undefined when the value is not a user token at all. */
  caller(token: string): UserCaller | UserTokenProblem | undefined {
    const t = this.accessTokens.get(token);
    if (!t) return undefined;
    const grant = this.grants.get(t.grantId);
    const user = grant && this.users.find(grant.tenantKey, grant.openId);
    // A token of a revoked grant, of an app no longer installed, or of a person no longer there.
    if (!grant || !user || grant.revoked || !this.sim.installedTenants(grant.appId).includes(grant.tenantKey)) {
      return { code: 99991668, msg: 'Invalid access token for authorization. Please make a request with token attached.' };
    }
    // Expired, including a rotated-away token after its grace: 99991677 (clients refresh on either).
    if (t.expiresAt <= this.sim.now()) return { code: 99991677, msg: 'Authentication token expired.' };
    return { appId: grant.appId, tenantKey: grant.tenantKey, user, grantId: grant.id, scopes: t.scopes };
  }

  /** Whether this value was ever issued as a user access token (valid or not). */
  isUserToken(token: string): boolean {
    return this.accessTokens.has(token);
  }

  // ---------------------------------------------------------------- grants, revocation, counters

  grant(id: string): SimGrant | undefined {
    return this.grants.get(id);
  }

  /** The grant an access or refresh token belongs to. */
  grantOf(token: string): SimGrant | undefined {
    const id = this.accessTokens.get(token)?.grantId ?? this.refreshTokens.get(token)?.grantId;
    return id ? this.grants.get(id) : undefined;
  }

  grantsOf(appId: string, openId: string, tenantKey?: string): SimGrant[] {
    return [...this.grants.values()].filter((g) => g.appId === appId && g.openId === openId && (!tenantKey || g.tenantKey === tenantKey));
  }

  /**
   * Revokes every grant of the user for the app (optionally in one tenant): its access tokens
   * answer 99991668, its refresh tokens 20064, and the accumulated scopes are forgotten. With
   * `push`, sends `auth.user_access_token.revoked_v4` (v2) to the app's request URL, encrypted and
   * signed like every push. Payload per the node SDK's type (user-oauth.md §7); the enum values of
   * `revoke_token_type` and `revoke_reason` are undocumented, so the defaults here are made up.
   */
  async revoke(
    appId: string,
    openId: string,
    opts: { push?: boolean; tenantKey?: string; revokeTokenType?: string; revokeReason?: string } = {},
  ): Promise<PushResult | undefined> {
    const grants = this.grantsOf(appId, openId, opts.tenantKey);
    for (const g of grants) g.revoked = true;
    const tenantKey = opts.tenantKey ?? grants.at(-1)?.tenantKey ?? this.sim.installedTenants(appId).find((t) => this.users.find(t, openId));
    for (const key of this.granted.keys()) {
      const [a, t, o] = key.split('|');
      if (a === appId && o === openId && (!opts.tenantKey || t === opts.tenantKey)) this.granted.delete(key);
    }
    if (!opts.push) return undefined;
    if (!tenantKey) throw new Error(`simulator: no tenant known for user ${openId} of ${appId}`);
    const user = this.users.find(tenantKey, openId);
    const app = this.sim.getApp(appId);
    return this.sim.pushV2(
      appId,
      'auth.user_access_token.revoked_v4',
      {
        revoke_token_type: opts.revokeTokenType ?? 'user_access_token',
        revoke_reason: opts.revokeReason ?? 'user_revoked',
        open_id: openId,
        union_id: user?.unionId ?? '',
        // user_id only for custom apps, as for other events' user ids (events.md §8.3); the SDK types it optional.
        ...(app.kind === 'custom' && user ? { user_id: user.userId } : {}),
      },
      { tenantKey },
    );
  }

  /** Calls of the token endpoint with grant_type=refresh_token (any outcome), optionally filtered. */
  refreshCount(filter: TokenCallFilter = {}): number {
    return this.countCalls('refresh_token', filter);
  }

  /** Calls with grant_type=authorization_code, optionally filtered. */
  codeExchangeCount(filter: TokenCallFilter = {}): number {
    return this.countCalls('authorization_code', filter);
  }

  private countCalls(grantType: string, f: TokenCallFilter): number {
    return this.tokenCalls.filter(
      (c) =>
        c.grantType === grantType &&
        (f.appId === undefined || c.appId === f.appId) &&
        (f.openId === undefined || c.openId === f.openId) &&
        (f.tenantKey === undefined || c.tenantKey === f.tenantKey) &&
        (f.grantId === undefined || c.grantId === f.grantId) &&
        (f.code === undefined || c.code === f.code),
    ).length;
  }

  resetCounts(): void {
    this.tokenCalls.length = 0;
  }

  /** Registers a person of a tenant by name (see SimUserRegistry.add). */
  addUser(tenantKey: string, user: NewSimUser): SimLarkUser {
    return this.users.add(tenantKey, user);
  }
}
