import { randomBytes, randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { encryptPush, signPush } from '../src/lark/event-crypto.js';
import { SimEvents, type EventDeliveryOptions } from './events/delivery.js';
import { larkCodeOf, larkReply } from './lark-reply.js';
import { UserAuth, type AuthorizeQuery, type OAuthOptions, type UserRef } from './oauth/user-auth.js';
import type { NewSimUser, SimLarkUser } from './oauth/users.js';
import { registerOAuthRoutes } from './oauth/routes.js';

/**
 * A Lark Open Platform stand-in: a real HTTP server speaking Lark's wire format
 * (../shared/lark/auth.md, events.md, limits-and-errors.md). Tests and benchmarks drive
 * larksync through it and read its call counts ("exactly one mint").
 */

export interface SimApp {
  appId: string;
  appSecret: string;
  kind: 'store' | 'custom';
  verificationToken: string;
  encryptKey?: string;
  /** Where pushes go (the app's "request URL"). */
  eventUrl?: string;
  /** Custom apps belong to exactly one tenant. */
  tenantKey?: string;
  tenantName?: string;
  /** The redirect URL allow-list of the authorize page (auth.md §5.1); none = no user sign-in. */
  redirectUris?: string[];
  /**
   * Scopes enabled in the console; the authorize page refuses others with 20027. Absent = any
   * scope is enabled (tests that do not care). `offline_access` must be listed to get refresh tokens.
   */
  scopes?: string[];
  /** The "refresh user_access_token" security switch (default on; off = 20074 on refresh). */
  userTokenRefresh?: boolean;
}

export interface SimulatorOptions {
  port?: number;
  host?: string;
  /** Lifetime of a newly issued app/tenant token (Lark: 7200 s). */
  tokenTtlSeconds?: number;
  /** Lark returns the same token while at least this much lifetime is left (Lark: 1800 s). */
  rotationWindowSeconds?: number;
  /** HTTP status used with token errors such as 99991663 (undocumented upstream; tests vary it). */
  tokenErrorHttpStatus?: number;
  /** Delay between a resend call and the app_ticket push (Lark: up to minutes). */
  resendPushDelayMs?: number;
  /**
   * The token model's clock (ms since the epoch; default Date.now): a benchmark or test running
   * larksync on a simulated clock gives the simulator the same one, so tokens expire and rotate
   * in simulated time. advanceTime() moves it further.
   */
  clock?: () => number;
  apps?: SimApp[];
  /** User-token timing and behaviour (oauth/user-auth.ts; later changes through `sim.oauth.setOptions`). */
  oauth?: Partial<OAuthOptions>;
  /** Change-event delivery: retry schedule, concurrency, seeds (events/delivery.ts; later `sim.events.setOptions`). */
  events?: Partial<EventDeliveryOptions>;
}

export interface PushResult {
  status: number;
  body: string;
  durationMs: number;
  uuid: string;
}

export interface CallRecord {
  method: string;
  path: string;
  status: number;
  code: number | undefined;
  at: number;
}

export interface Fault {
  /** Matches the request path (without query), e.g. `/open-apis/auth/v3/tenant_access_token`. */
  path: string;
  status?: number;
  code?: number;
  msg?: string;
  /** Wait this long before answering (to provoke client timeouts). */
  delayMs?: number;
  /**
   * Handle the request at once, then hold the answer this long: Lark has done the work (a refresh
   * token rotated) while the answer is still on its way, and a client that dies meanwhile never
   * learns the result.
   */
  delayAnswerMs?: number;
  /** How many requests it applies to (default 1). */
  count?: number;
  headers?: Record<string, string>;
}

interface IssuedToken {
  value: string;
  expiresAt: number;
  revoked: boolean;
}

interface StoredPush {
  appId: string;
  plaintext: string;
}

export const AUTH_PATHS = {
  appAccessToken: '/open-apis/auth/v3/app_access_token',
  tenantAccessToken: '/open-apis/auth/v3/tenant_access_token',
  appAccessTokenInternal: '/open-apis/auth/v3/app_access_token/internal',
  tenantAccessTokenInternal: '/open-apis/auth/v3/tenant_access_token/internal',
  ticketResend: '/open-apis/auth/v3/app_ticket/resend',
  tenantQuery: '/open-apis/tenant/v2/tenant/query',
} as const;

export interface TenantIdentity {
  appId: string;
  tenantKey: string;
  /** Set when the call carried a user access token: the user it acts as. */
  user?: SimLarkUser;
}

/** The token of `Authorization: Bearer <token>`, or '' when there is none. */
function bearerOf(req: FastifyRequest): string {
  const header = req.headers.authorization;
  return typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
}

export class LarkSimulator {
  readonly app: FastifyInstance;
  url = '';
  readonly callLog: CallRecord[] = [];
  private readonly apps = new Map<string, SimApp>();
  /** store app -> installed tenant keys */
  private readonly installs = new Map<string, Set<string>>();
  private readonly tickets = new Map<string, string[]>();
  /** key: `app:<appId>` or `tenant:<appId>:<tenantKey>` */
  private readonly tokens = new Map<string, IssuedToken[]>();
  private readonly tokenOwners = new Map<string, { kind: 'app' | 'tenant'; appId: string; tenantKey?: string }>();
  /** Every token still listed under its key, by value (validity checks at 10,000s of tenants). */
  private readonly tokensByValue = new Map<string, IssuedToken>();
  private readonly pushes = new Map<string, StoredPush>();
  private readonly faults: Array<Fault & { remaining: number }> = [];
  private readonly pending = new Set<Promise<unknown>>();
  private clockOffsetMs = 0;
  private readonly clock: () => number;
  readonly opts: Required<Omit<SimulatorOptions, 'apps' | 'port' | 'host' | 'clock' | 'oauth' | 'events'>> & { port: number; host: string };
  /** User sign-in: authorize page, v2 token endpoint, grants, counters and faults (oauth/). */
  readonly oauth: UserAuth;
  /**
   * Change events (contact, approval, Base, Docs) pushed to the apps' request URLs with Lark's
   * retries and per-instance approval ordering; subscriptions, counters, pause/resume, idle(),
   * out-of-order and duplicate injection, and the rate generator (events/delivery.ts).
   */
  readonly events: SimEvents;

  constructor(options: SimulatorOptions = {}) {
    this.opts = {
      port: options.port ?? 0,
      host: options.host ?? '127.0.0.1',
      tokenTtlSeconds: options.tokenTtlSeconds ?? 7200,
      rotationWindowSeconds: options.rotationWindowSeconds ?? 1800,
      tokenErrorHttpStatus: options.tokenErrorHttpStatus ?? 400,
      resendPushDelayMs: options.resendPushDelayMs ?? 0,
    };
    this.clock = options.clock ?? Date.now;
    this.oauth = new UserAuth(this, options.oauth);
    this.events = new SimEvents(this, options.events);
    for (const a of options.apps ?? []) this.addApp(a);
    this.app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024 });
    this.registerRoutes();
    registerOAuthRoutes(this.app, this);
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<string> {
    const address = await this.app.listen({ port: this.opts.port, host: this.opts.host });
    this.url = address.replace('[::1]', '127.0.0.1');
    return this.url;
  }

  async stop(): Promise<void> {
    await this.events.close();
    await Promise.allSettled([...this.pending]);
    await this.app.close();
  }

  /** Waits for background pushes (e.g. after a resend) to finish. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  now(): number {
    return this.clock() + this.clockOffsetMs;
  }

  /** Moves the simulator's clock (token expiry) forward without waiting. */
  advanceTime(seconds: number): void {
    this.clockOffsetMs += seconds * 1000;
  }

  // ---------------------------------------------------------------- configuration

  addApp(app: SimApp): void {
    this.apps.set(app.appId, { ...app });
    if (app.kind === 'store') this.installs.set(app.appId, this.installs.get(app.appId) ?? new Set());
  }

  getApp(appId: string): SimApp {
    const app = this.apps.get(appId);
    if (!app) throw new Error(`simulator: unknown app ${appId}`);
    return app;
  }

  findApp(appId: string): SimApp | undefined {
    return this.apps.get(appId);
  }

  /** Every app the simulator knows. */
  listApps(): SimApp[] {
    return [...this.apps.values()];
  }

  /** The tenants whose people can use the app: a store app's installs, a custom app's own tenant. */
  installedTenants(appId: string): string[] {
    const app = this.apps.get(appId);
    if (!app) return [];
    if (app.kind === 'custom') return app.tenantKey ? [app.tenantKey] : [];
    return [...(this.installs.get(appId) ?? [])];
  }

  /** Whether the app may be used in the tenant (installedTenants, without building the list). */
  isInstalled(appId: string, tenantKey: string): boolean {
    const app = this.apps.get(appId);
    if (!app) return false;
    return app.kind === 'custom' ? app.tenantKey === tenantKey : this.installs.get(appId)?.has(tenantKey) === true;
  }

  /** Replaces the app's redirect URL allow-list (the console's security settings). */
  setRedirectUris(appId: string, uris: string[]): void {
    this.getApp(appId).redirectUris = [...uris];
  }

  /** Replaces the scopes enabled for the app (undefined = any scope). */
  setAppScopes(appId: string, scopes: string[] | undefined): void {
    this.getApp(appId).scopes = scopes ? [...scopes] : undefined;
  }

  // ---------------------------------------------------------------- users (oauth/)

  /** Registers a person of a tenant who can sign in (besides the tenant's contact directory, when SimData is attached). */
  addUser(tenantKey: string, user: NewSimUser): SimLarkUser {
    return this.oauth.addUser(tenantKey, user);
  }

  /** Replaces the tenant's administrators (`is_user_admin`). Default: `ou_admin_<tenantKey>`, the app_open installer. */
  setTenantAdmins(tenantKey: string, openIds: Iterable<string>): void {
    this.oauth.users.setAdmins(tenantKey, openIds);
  }

  /**
   * The authorize page without the page: where the browser goes after `user` answers (a code, or
   * `error=access_denied` with `deny`). Throws AuthorizePageError where the page shows an error.
   */
  authorizeAs(appId: string, user: UserRef, query: Omit<AuthorizeQuery, 'client_id'>, opts: { deny?: boolean } = {}): string {
    return this.oauth.authorizeAs(appId, user, query, opts);
  }

  /**
   * Revokes the user's grants for the app (tokens dead: 20064 on refresh, 99991668 on API calls);
   * with `push`, also pushes `auth.user_access_token.revoked_v4` to the app.
   */
  revokeUserTokens(
    appId: string,
    openId: string,
    opts: { push?: boolean; tenantKey?: string; revokeTokenType?: string; revokeReason?: string } = {},
  ): Promise<PushResult | undefined> {
    return this.oauth.revoke(appId, openId, opts);
  }

  setEventUrl(appId: string, url: string): void {
    this.getApp(appId).eventUrl = url;
  }

  /** Lets a store app mint tokens for this tenant (what app_open means upstream). */
  installTenant(appId: string, tenantKey: string): void {
    this.installs.get(appId)?.add(tenantKey);
  }

  uninstallTenant(appId: string, tenantKey: string): void {
    this.installs.get(appId)?.delete(tenantKey);
    for (const t of this.tokens.get(`tenant:${appId}:${tenantKey}`) ?? []) t.revoked = true;
    // The install's change-event subscriptions end with it (unconfirmed: see SubscriptionBook.dropTenant).
    this.events.subscriptions.dropTenant(appId, tenantKey);
  }

  /** Issues a new ticket; the previous one stays accepted as a grace (auth.md §3.1). */
  issueTicket(appId: string): string {
    const ticket = `tkt-${randomBytes(12).toString('hex')}`;
    const list = this.tickets.get(appId) ?? [];
    list.push(ticket);
    this.tickets.set(appId, list.slice(-2));
    return ticket;
  }

  currentTicket(appId: string): string | undefined {
    return this.tickets.get(appId)?.at(-1);
  }

  /** Makes every ticket issued so far unacceptable (the app then gets 10012). */
  invalidateTickets(appId: string): void {
    this.tickets.set(appId, []);
  }

  revokeToken(value: string): void {
    for (const list of this.tokens.values()) for (const t of list) if (t.value === value) t.revoked = true;
  }

  revokeAllTokens(appId?: string): void {
    for (const [key, list] of this.tokens) {
      // Keys are `app:<appId>` or `tenant:<appId>:<tenantKey>`; compare the app id exactly, so
      // revoking cli_a leaves cli_ab alone.
      if (appId && key.split(':')[1] !== appId) continue;
      for (const t of list) t.revoked = true;
    }
  }

  /** Every currently valid token value issued for a tenant (for assertions). */
  validTenantTokens(appId: string, tenantKey: string): string[] {
    return (this.tokens.get(`tenant:${appId}:${tenantKey}`) ?? [])
      .filter((t) => !t.revoked && t.expiresAt > this.now())
      .map((t) => t.value);
  }

  /** Changes token timing or error behaviour of a running simulator (applies to later requests). */
  setOptions(patch: Partial<Pick<SimulatorOptions, 'tokenTtlSeconds' | 'rotationWindowSeconds' | 'tokenErrorHttpStatus' | 'resendPushDelayMs'>>): void {
    for (const [k, v] of Object.entries(patch) as Array<[keyof typeof patch, number | undefined]>) {
      if (v !== undefined) this.opts[k] = v;
    }
  }

  injectFault(fault: Fault): void {
    this.faults.push({ ...fault, remaining: fault.count ?? 1 });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  // ---------------------------------------------------------------- call counting

  /** Number of calls to a path (exact match, no query), optionally only those answered with `code`. */
  count(path: string, code?: number): number {
    return this.callLog.filter((c) => c.path === path && (code === undefined || c.code === code)).length;
  }

  resetCounts(): void {
    this.callLog.length = 0;
  }

  // ---------------------------------------------------------------- pushes

  /** Pushes a fresh app_ticket to the app's request URL, as Lark does hourly and after a resend. */
  async pushTicket(appId: string): Promise<PushResult> {
    const ticket = this.issueTicket(appId);
    return this.pushV1(appId, { app_id: appId, app_ticket: ticket, type: 'app_ticket' });
  }

  /** Pushes a v1 event (`event_callback`) with the given `event` object. */
  async pushV1(appId: string, event: Record<string, unknown>, opts: { uuid?: string; url?: string } = {}): Promise<PushResult> {
    const app = this.getApp(appId);
    const uuid = opts.uuid ?? randomUUID().replace(/-/g, '');
    const body = {
      ts: (this.now() / 1000).toFixed(6),
      uuid,
      token: app.verificationToken,
      type: 'event_callback',
      event,
    };
    return this.deliver(appId, uuid, JSON.stringify(body), opts.url);
  }

  /** Pushes a v2 event (`schema: "2.0"`). */
  async pushV2(
    appId: string,
    eventType: string,
    event: Record<string, unknown>,
    opts: { eventId?: string; tenantKey?: string; url?: string } = {},
  ): Promise<PushResult> {
    const app = this.getApp(appId);
    const eventId = opts.eventId ?? randomUUID().replace(/-/g, '');
    const body = {
      schema: '2.0',
      header: {
        event_id: eventId,
        token: app.verificationToken,
        create_time: String(this.now()),
        event_type: eventType,
        tenant_key: opts.tenantKey ?? '',
        app_id: appId,
      },
      event,
    };
    return this.deliver(appId, eventId, JSON.stringify(body), opts.url);
  }

  appOpen(appId: string, tenantKey: string, extra: Record<string, unknown> = {}): Promise<PushResult> {
    this.installTenant(appId, tenantKey);
    return this.pushV1(appId, {
      app_id: appId,
      tenant_key: tenantKey,
      type: 'app_open',
      applicants: [{ open_id: `ou_applicant_${tenantKey}` }],
      installer: { open_id: `ou_admin_${tenantKey}` },
      ...extra,
    });
  }

  appStatusChange(appId: string, tenantKey: string, status: 'start_by_tenant' | 'stop_by_tenant' | 'stop_by_platform'): Promise<PushResult> {
    return this.pushV1(appId, {
      app_id: appId,
      tenant_key: tenantKey,
      type: 'app_status_change',
      status,
      ...(status === 'start_by_tenant' ? { operator: { open_id: `ou_admin_${tenantKey}` } } : {}),
    });
  }

  appUninstalled(appId: string, tenantKey: string): Promise<PushResult> {
    this.uninstallTenant(appId, tenantKey);
    return this.pushV1(appId, { app_id: appId, tenant_key: tenantKey, type: 'app_uninstalled' });
  }

  /** Sends an earlier push again with the same uuid / event_id, as Lark's retries do. */
  async redeliver(uuid: string, url?: string): Promise<PushResult> {
    const stored = this.pushes.get(uuid);
    if (!stored) throw new Error(`simulator: no push with id ${uuid}`);
    return this.send(stored.appId, uuid, stored.plaintext, url);
  }

  /** The body + headers Lark would send for this plaintext (encrypted and signed when the app has a key). */
  wireFormat(appId: string, plaintext: string, timestampSeconds = Math.floor(this.now() / 1000)) {
    const app = this.getApp(appId);
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
    if (!app.encryptKey) return { body: plaintext, headers };
    const body = JSON.stringify({ encrypt: encryptPush(app.encryptKey, plaintext) });
    const timestamp = String(timestampSeconds);
    const nonce = randomBytes(8).toString('hex');
    headers['x-lark-request-timestamp'] = timestamp;
    headers['x-lark-request-nonce'] = nonce;
    headers['x-lark-signature'] = signPush(timestamp, nonce, app.encryptKey, body);
    return { body, headers };
  }

  /** URL verification, as the console does when the request URL is saved. */
  async challenge(appId: string, url?: string): Promise<PushResult & { challenge: string }> {
    const app = this.getApp(appId);
    const challenge = `ch-${randomBytes(8).toString('hex')}`;
    const plaintext = JSON.stringify({ challenge, token: app.verificationToken, type: 'url_verification' });
    const { body, headers } = this.wireFormat(appId, plaintext);
    // Challenges carry no signature headers (events.md §3).
    delete headers['x-lark-signature'];
    delete headers['x-lark-request-timestamp'];
    delete headers['x-lark-request-nonce'];
    const res = await this.post(url ?? this.requireEventUrl(app), body, headers, '');
    return { ...res, challenge };
  }

  /** `url` overrides the app's request URL for this push (e.g. to reach one replica of several). */
  private async deliver(appId: string, id: string, plaintext: string, url?: string): Promise<PushResult> {
    this.pushes.set(id, { appId, plaintext });
    return this.send(appId, id, plaintext, url);
  }

  private async send(appId: string, id: string, plaintext: string, url?: string): Promise<PushResult> {
    const app = this.getApp(appId);
    const { body, headers } = this.wireFormat(appId, plaintext);
    return this.post(url ?? this.requireEventUrl(app), body, headers, id);
  }

  /**
   * One attempt of a change event (events/delivery.ts): the app's wire format (encrypted and signed
   * when it has an encrypt key, a fresh signature each time) posted to its request URL.
   */
  async transmit(appId: string, id: string, plaintext: string, opts: { timeoutMs: number }): Promise<PushResult> {
    const app = this.getApp(appId);
    if (!app.eventUrl) return { status: 0, body: '', durationMs: 0, uuid: id };
    const { body, headers } = this.wireFormat(appId, plaintext);
    return this.post(app.eventUrl, body, headers, id, opts.timeoutMs);
  }

  private requireEventUrl(app: SimApp): string {
    if (!app.eventUrl) throw new Error(`simulator: app ${app.appId} has no event URL`);
    return app.eventUrl;
  }

  private async post(url: string, body: string, headers: Record<string, string>, uuid: string, timeoutMs = 3_000): Promise<PushResult> {
    const started = performance.now();
    try {
      // Lark waits 3 s for an HTTP 200 before it counts the push as failed.
      const res = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.text();
      return { status: res.status, body: text, durationMs: performance.now() - started, uuid };
    } catch {
      return { status: 0, body: '', durationMs: performance.now() - started, uuid };
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  // ---------------------------------------------------------------- tokens

  private issue(key: string, owner: { kind: 'app' | 'tenant'; appId: string; tenantKey?: string }): { value: string; expire: number } {
    const now = this.now();
    const list = this.tokens.get(key) ?? [];
    const current = list.at(-1);
    if (current && !current.revoked && current.expiresAt - now >= this.opts.rotationWindowSeconds * 1000) {
      return { value: current.value, expire: Math.floor((current.expiresAt - now) / 1000) };
    }
    const prefix = owner.kind === 'app' ? 'a-' : 't-';
    const value = `${prefix}${randomBytes(16).toString('hex')}`;
    const issued: IssuedToken = { value, expiresAt: now + this.opts.tokenTtlSeconds * 1000, revoked: false };
    list.push(issued);
    for (const dropped of list.slice(0, -3)) this.tokensByValue.delete(dropped.value);
    this.tokens.set(key, list.slice(-3));
    this.tokensByValue.set(value, issued);
    this.tokenOwners.set(value, owner);
    return { value, expire: this.opts.tokenTtlSeconds };
  }

  private isValid(value: string): boolean {
    const t = this.tokensByValue.get(value);
    return t !== undefined && !t.revoked && t.expiresAt > this.now();
  }

  /**
   * Checks the bearer token of a data API call. Answers Lark's error itself and returns
   * undefined when the token is missing or invalid.
   */
  authorizeTenant(req: FastifyRequest, reply: FastifyReply): TenantIdentity | undefined {
    return this.authorize(req, reply, { tenant: true, user: false });
  }

  /** Like authorizeTenant, for APIs that take a tenant token or a user token (the data APIs). */
  authorizeCaller(req: FastifyRequest, reply: FastifyReply): TenantIdentity | undefined {
    return this.authorize(req, reply, { tenant: true, user: true });
  }

  /** For APIs that take only a user token (user_info). */
  authorizeUser(req: FastifyRequest, reply: FastifyReply): (TenantIdentity & { user: SimLarkUser }) | undefined {
    return this.authorize(req, reply, { tenant: false, user: true }) as (TenantIdentity & { user: SimLarkUser }) | undefined;
  }

  /**
   * Codes (auth.md §6): 99991661 no token; 99991663 a tenant token that is invalid, or any token
   * on a tenant-only API that is not a user token; 99991668 a user token that is invalid or
   * revoked, or a tenant token on a user-only API ("this API does not accept a tenant token" is
   * 99991663 in the notes: that is what a valid tenant token gets there); 99991677 an expired user
   * token. The HTTP status of these is undocumented: `tokenErrorHttpStatus` (default 400).
   */
  private authorize(req: FastifyRequest, reply: FastifyReply, accepts: { tenant: boolean; user: boolean }): TenantIdentity | undefined {
    const refuse = (code: number, msg: string) => {
      void larkReply(reply, this.opts.tokenErrorHttpStatus, { code, msg });
      return undefined;
    };
    const token = bearerOf(req);
    if (!token) return refuse(99991661, 'Missing access token for authorization');
    const owner = this.tokenOwners.get(token);
    if (owner?.kind === 'tenant' && this.isValid(token)) {
      if (!accepts.tenant) return refuse(99991663, 'This API does not accept tenant_access_token; use a user_access_token');
      return { appId: owner.appId, tenantKey: owner.tenantKey ?? '' };
    }
    const asUser = owner ? undefined : this.oauth.caller(token);
    if (asUser && 'user' in asUser) {
      if (!accepts.user) return refuse(99991668, 'This API does not accept user_access_token; use a tenant_access_token');
      return { appId: asUser.appId, tenantKey: asUser.tenantKey, user: asUser.user };
    }
    if (asUser) return refuse(asUser.code, asUser.msg);
    return accepts.tenant
      ? refuse(99991663, 'Invalid access token for authorization')
      : refuse(99991668, 'Invalid access token for authorization. Please make a request with token attached.');
  }

  // ---------------------------------------------------------------- HTTP

  private registerRoutes(): void {
    const app = this.app;

    app.addHook('onRequest', async (req, reply) => {
      const path = req.url.split('?')[0] ?? '';
      const fault = this.faults.find((f) => f.path === path && f.remaining > 0);
      if (!fault) return;
      fault.remaining -= 1;
      if (fault.delayAnswerMs) (req as unknown as { delayAnswerMs?: number }).delayAnswerMs = fault.delayAnswerMs;
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.status !== undefined || fault.code !== undefined) {
        return larkReply(
          reply,
          fault.status ?? 200,
          { code: fault.code ?? 1500, msg: fault.msg ?? 'simulated failure' },
          fault.headers,
        );
      }
    });

    // Recorded before the bytes leave, so a client that reads its answer sees the call counted.
    app.addHook('onSend', async (req, reply, payload) => {
      const hold = (req as unknown as { delayAnswerMs?: number }).delayAnswerMs;
      if (hold) await new Promise((r) => setTimeout(r, hold));
      this.callLog.push({
        method: req.method,
        path: req.url.split('?')[0] ?? '',
        status: reply.statusCode,
        code: larkCodeOf(req),
        at: Date.now(),
      });
      return payload;
    });

    type Creds = { app_id?: string; app_secret?: string; app_ticket?: string; app_access_token?: string; tenant_key?: string };

    const checkCreds = (body: Creds, reply: FastifyReply): SimApp | undefined => {
      const a = body.app_id ? this.apps.get(body.app_id) : undefined;
      if (!body.app_id || !body.app_secret) {
        void larkReply(reply, 400, { code: 10003, msg: 'invalid param: app_id and app_secret are required' });
        return undefined;
      }
      // auth.md §6: 99991543 "app_id or app_secret does not exist/incorrect" for an app Lark
      // does not know, 10015 "wrong app_secret" for a known app with the wrong (e.g. revoked) secret.
      if (!a) {
        void larkReply(reply, 400, { code: 99991543, msg: 'app_id or app_secret is invalid' });
        return undefined;
      }
      if (a.appSecret !== body.app_secret) {
        void larkReply(reply, 400, { code: 10015, msg: 'app secret invalid' });
        return undefined;
      }
      return a;
    };

    app.post(AUTH_PATHS.appAccessToken, async (req, reply) => {
      const body = (req.body ?? {}) as Creds;
      const a = checkCreds(body, reply);
      if (!a) return reply;
      if (a.kind !== 'store') return larkReply(reply, 400, { code: 10005, msg: 'app is not a store app; use /internal' });
      if (!body.app_ticket || !(this.tickets.get(a.appId) ?? []).includes(body.app_ticket)) {
        return larkReply(reply, 400, { code: 10012, msg: 'app_ticket is invalid' });
      }
      const t = this.issue(`app:${a.appId}`, { kind: 'app', appId: a.appId });
      return larkReply(reply, 200, { code: 0, msg: 'ok', app_access_token: t.value, expire: t.expire });
    });

    app.post(AUTH_PATHS.tenantAccessToken, async (req, reply) => {
      const body = (req.body ?? {}) as Creds;
      if (!body.app_access_token || !body.tenant_key) {
        return larkReply(reply, 400, { code: 10003, msg: 'invalid param: app_access_token and tenant_key are required' });
      }
      const owner = this.tokenOwners.get(body.app_access_token);
      if (!owner || owner.kind !== 'app' || !this.isValid(body.app_access_token)) {
        return larkReply(reply, this.opts.tokenErrorHttpStatus, { code: 99991664, msg: 'app_access_token is invalid' });
      }
      if (!this.installs.get(owner.appId)?.has(body.tenant_key)) {
        // The exact upstream code for "not installed" is undocumented (auth.md §3.4).
        return larkReply(reply, 400, { code: 10013, msg: 'get tenant access token fail: tenant has not installed the app' });
      }
      const t = this.issue(`tenant:${owner.appId}:${body.tenant_key}`, { kind: 'tenant', appId: owner.appId, tenantKey: body.tenant_key });
      return larkReply(reply, 200, { code: 0, msg: 'ok', tenant_access_token: t.value, expire: t.expire });
    });

    app.post(AUTH_PATHS.appAccessTokenInternal, async (req, reply) => {
      const a = checkCreds((req.body ?? {}) as Creds, reply);
      if (!a) return reply;
      if (a.kind !== 'custom') return larkReply(reply, 400, { code: 10005, msg: 'store apps must use app_ticket' });
      const t = this.issue(`app:${a.appId}`, { kind: 'app', appId: a.appId });
      return larkReply(reply, 200, { code: 0, msg: 'ok', app_access_token: t.value, expire: t.expire });
    });

    app.post(AUTH_PATHS.tenantAccessTokenInternal, async (req, reply) => {
      const a = checkCreds((req.body ?? {}) as Creds, reply);
      if (!a) return reply;
      if (a.kind !== 'custom' || !a.tenantKey) {
        return larkReply(reply, 400, { code: 10005, msg: 'store apps must use app_access_token + tenant_key' });
      }
      const t = this.issue(`tenant:${a.appId}:${a.tenantKey}`, { kind: 'tenant', appId: a.appId, tenantKey: a.tenantKey });
      return larkReply(reply, 200, { code: 0, msg: 'ok', tenant_access_token: t.value, expire: t.expire });
    });

    app.post(AUTH_PATHS.ticketResend, async (req, reply) => {
      const a = checkCreds((req.body ?? {}) as Creds, reply);
      if (!a) return reply;
      if (a.kind !== 'store') return larkReply(reply, 400, { code: 10016, msg: 'app resend fail' });
      const push = new Promise<void>((resolve) => setTimeout(resolve, this.opts.resendPushDelayMs)).then(() =>
        a.eventUrl ? this.pushTicket(a.appId) : undefined,
      );
      void this.track(push);
      return larkReply(reply, 200, { code: 0, msg: 'ok' });
    });

    app.get(AUTH_PATHS.tenantQuery, async (req, reply) => {
      const who = this.authorizeTenant(req, reply);
      if (!who) return reply;
      const a = this.apps.get(who.appId);
      return larkReply(reply, 200, {
        code: 0,
        msg: 'success',
        data: {
          tenant: {
            name: a?.kind === 'custom' && a.tenantName ? a.tenantName : `Tenant ${who.tenantKey}`,
            display_id: `F${who.tenantKey.slice(0, 8)}`,
            tenant_tag: 0,
            tenant_key: who.tenantKey,
            avatar: { avatar_origin: '', avatar_72: '', avatar_240: '', avatar_640: '' },
          },
        },
      });
    });

    app.setNotFoundHandler(async (req, reply) =>
      larkReply(reply, 404, { code: 99991201, msg: `path not found: ${req.method} ${req.url.split('?')[0]}` }),
    );
  }
}
