import { createHash, randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Database } from '../db/database.js';
import { SealError, type Sealer } from '../crypto/sealer.js';
import type { LarkHttp } from '../lark/http.js';
import { LarkApiError, LarkTransportError } from '../lark/errors.js';
import type { Metrics } from '../metrics/metrics.js';
import { AppError } from '../errors.js';
import { TenantNotActiveError, TenantNotFoundError } from '../tenants/tenant-errors.js';
import { findApp } from '../apps/apps.repository.js';
import { toCredentials, type AppCredentials } from '../apps/app-credentials.js';
import type { AppTicketsService } from './app-tickets.service.js';
import { defaultRefreshWindow, phaseFraction, planRefresh, shiftOf, type RefreshWindow } from './refresh-plan.js';
import {
  backoffSeconds,
  defaultMintBackoff,
  mintErrorClass,
  mintErrorCode,
  TokenUnavailableError,
  type MintBackoff,
  type MintErrorClass,
} from './mint-errors.js';
import {
  claimMint,
  clearMintBackoff,
  deleteTenantTokens,
  findFreshToken,
  findMintState,
  findTokenRow,
  invalidateToken,
  readMintState,
  recordMintFailure,
  releaseMint,
  storeMintedToken,
  tokenContext,
  tokenKeyId,
  type MintState,
  type TokenKey,
} from './tokens.repository.js';

const hashToken = (value: string) => createHash('sha256').update(value).digest('hex');

export interface TokenOptions {
  /**
   * Where, as lifetime left, a token's refresh point may lie; each token gets its own point in it
   * (refresh-plan.ts). Lark hands out a new token only in the last 30 minutes of the old one's
   * life (auth.md §4). A window of width 0 refreshes every token the same margin before expiry.
   */
  refreshWindow: RefreshWindow;
  /** What "now" is for expiry and refresh times. */
  clock: Clock;
  /** How refreshDue (the minute cron) works through due tokens. */
  refresh: RefreshTickOptions;
  /**
   * How long a claim to mint lasts. It must outlast a mint (an HTTP call of at most 10 s, twice
   * after a refused app token or ticket, plus a wait of up to 5 s for a pushed ticket); a process
   * killed mid-mint holds up the others (those without a usable token) for at most this long.
   */
  mintLeaseMs: number;
  /** Waits after repeated failed mints (mint-errors.ts). */
  backoff: MintBackoff;
}

export interface RefreshTickOptions {
  /** Due tokens read per query. */
  batch: number;
  /** Mints in flight at once: each holds a pool connection while it waits for Lark. */
  concurrency: number;
  /** No new mint starts after this long, so one tick ends before the next minute's begins. */
  budgetMs: number;
}

export const defaultTokenOptions: TokenOptions = {
  refreshWindow: defaultRefreshWindow,
  clock: systemClock,
  refresh: { batch: 500, concurrency: 4, budgetMs: 40_000 },
  mintLeaseMs: 30_000,
  backoff: defaultMintBackoff,
};

/**
 * A stored token is handed out while a refresh fails only while it has at least this long to live
 * (stale-while-revalidate): enough for the call it is handed to, with its retries.
 */
const USABLE_MARGIN_SECONDS = 60;

/**
 * A caller holding a usable token waits this long at most for another process's mint before it
 * takes the stored token: normally the mint lands well within it and everyone gets the new token,
 * but a stuck or dead minter must not stall callers that have a perfectly good token.
 */
const STALE_WAIT_MS = 2_000;

/** Polling for another process's mint: from the first interval, doubling to the last. */
const MINT_POLL_MS = { first: 10, max: 100 };

export interface TokenHealth {
  /** `failing`: the last mint failed (a stored token may still be valid: see expiresAt). */
  status: 'valid' | 'refresh_due' | 'expired' | 'missing' | 'failing';
  expiresAt: string | null;
  refreshAt: string | null;
  mintedAt: string | null;
  mintCount: number;
  /** Mints failed in a row. */
  failures: number;
  /** While backing off: the earliest next mint. */
  nextAttemptAt: string | null;
  lastError: { code: string; class: MintErrorClass; message: string; at: string } | null;
}

interface ObtainOptions {
  /** The caller has just dropped a token Lark rejected: do not share a lookup that may have read it. */
  afterInvalidation?: boolean;
}

/** A token lookup's result; `refreshError` when the token is a still-valid one whose refresh failed. */
interface Lookup {
  token: string;
  refreshError?: unknown;
}

/** Mints a token (calls Lark); storing it, and the claim around it, are the caller's. */
type Mint = () => Promise<{ token: string; expire: number }>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A tenant's token use with its app already looked up (see TokenService.forTenant). */
export interface TenantTokens {
  readonly tenantKey: string;
  readonly app: AppCredentials;
  withToken<T>(call: (token: string, baseUrl: string) => Promise<T>): Promise<T>;
}

/** The app_ticket is not known (yet): Lark was asked to push one. Retry later. */
export class AppTicketMissingError extends AppError {
  constructor(appId: string) {
    super(503, 'app_ticket_missing', `no app_ticket is known for app ${appId} yet; Lark was asked to push one, retry shortly`);
  }
}

/**
 * Owns the token lifecycle: app_ticket -> app_access_token -> tenant_access_token per tenant_key,
 * and custom apps' internal tenant tokens. Tokens live sealed in Postgres; each is minted once
 * however many callers ask at once: an in-process promise map (single flight) plus, across
 * processes, a claim on the token's row (a short lease) taken in one statement before calling
 * Lark, so no transaction stays open across the HTTP call. Mints that keep failing back off
 * exponentially per token, and a stored token still valid is handed out meanwhile.
 */
export class TokenService {
  /** Per token key: the lookup (stored token, else a mint) that concurrent callers share. */
  private readonly inflight = new Map<string, Promise<Lookup>>();
  /** Per tenant: the tenant-and-app lookup that concurrent callers share. */
  private readonly tenantLookups = new Map<string, Promise<{ app: AppCredentials }>>();
  private readonly clock: Clock;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly http: LarkHttp,
    private readonly tickets: AppTicketsService,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: TokenOptions = defaultTokenOptions,
  ) {
    this.clock = options.clock;
  }

  // ------------------------------------------------------------------ public API

  async getAppAccessToken(appId: string): Promise<string> {
    return this.appToken(await this.app(appId));
  }

  private appToken(app: AppCredentials, opts: ObtainOptions = {}): Promise<string> {
    return this.appLookup(app, opts).then((l) => l.token);
  }

  private appLookup(app: AppCredentials, opts: ObtainOptions = {}): Promise<Lookup> {
    const key: TokenKey = { kind: 'app', appId: app.appId, tenantKey: '' };
    return this.obtain(key, () => this.mintAppToken(app), opts);
  }

  async getTenantAccessToken(tenantKey: string): Promise<string> {
    const { app } = await this.tenantApp(tenantKey);
    return this.tenantToken(app, tenantKey);
  }

  private tenantToken(app: AppCredentials, tenantKey: string, opts: ObtainOptions = {}): Promise<string> {
    return this.tenantLookup(app, tenantKey, opts).then((l) => l.token);
  }

  private tenantLookup(app: AppCredentials, tenantKey: string, opts: ObtainOptions = {}): Promise<Lookup> {
    const key: TokenKey = { kind: 'tenant', appId: app.appId, tenantKey };
    return this.obtain(key, () => this.mintTenantToken(app, tenantKey), opts);
  }

  /**
   * Runs `call` with the tenant's token. When Lark says the token is no good (99991661/3/4/5/8,
   * whatever the HTTP status), drops that token, mints again and retries once.
   */
  async withTenantToken<T>(tenantKey: string, call: (token: string, baseUrl: string) => Promise<T>): Promise<T> {
    return (await this.forTenant(tenantKey)).withToken(call);
  }

  /**
   * The tenant and its app resolved once, for callers that make many calls (a sync slice). Safe to
   * hold: an uninstall deletes the tenant's tokens, and a mint stores only for a tenant still served.
   */
  async forTenant(tenantKey: string): Promise<TenantTokens> {
    const { app } = await this.tenantApp(tenantKey);
    const key: TokenKey = { kind: 'tenant', appId: app.appId, tenantKey };
    return {
      tenantKey,
      app,
      withToken: async (call) => {
        const token = await this.tenantToken(app, tenantKey);
        try {
          return await call(token, app.baseUrl);
        } catch (err) {
          if (!(err instanceof LarkApiError) || !err.isTokenInvalid) throw err;
          this.log.info({ tenantKey, code: err.code }, 'tenant token rejected; minting a new one and retrying once');
          await invalidateToken(this.db, key, hashToken(token));
          const fresh = await this.tenantToken(app, tenantKey, { afterInvalidation: true });
          return call(fresh, app.baseUrl);
        }
      },
    };
  }

  /**
   * Keeps a token that was minted outside the usual path (custom app registration checks
   * credentials by minting), in the caller's transaction if given. New credentials were just
   * proven, so the app's tokens stop backing off.
   */
  async adopt(key: TokenKey, token: string, expire: number, db: Kysely<Database> = this.db): Promise<void> {
    const prev = await findMintState(db, key, this.clock.sql());
    await this.write(db, key, token, expire, prev ? shiftOf(prev, this.options.refreshWindow) : null, null);
    await clearMintBackoff(db, key.appId);
  }

  /** New credentials for an app were stored: its failing tokens may try again at once. */
  async credentialsChanged(appId: string, db: Kysely<Database> = this.db): Promise<void> {
    await clearMintBackoff(db, appId);
  }

  /** Drops a token that an upstream call rejected (only if it is still the stored one). */
  async invalidate(key: TokenKey, token: string): Promise<boolean> {
    return invalidateToken(this.db, key, hashToken(token));
  }

  /**
   * Deletes `appId`'s tokens for the tenant (another app serving it keeps its own). A mint in
   * flight stores nothing once the tenant is uninstalled (storeTenantToken checks, under the
   * tenant row's lock), so after an uninstall nothing brings a token back.
   */
  async purgeTenant(tenantKey: string, appId: string): Promise<number> {
    return deleteTenantTokens(this.db, tenantKey, appId);
  }

  /**
   * Mints every token whose refresh time has come, for active tenants and the apps behind them,
   * oldest refresh time first, a few at a time, until none is due or the tick's budget is spent.
   * Tokens whose last mint failed go after the healthy ones and are tried once per call, so a
   * tenant Lark keeps refusing cannot starve the others.
   */
  async refreshDue(opts: Partial<RefreshTickOptions> = {}): Promise<{ refreshed: number; failed: number; left: number }> {
    const { batch, concurrency, budgetMs } = { ...this.options.refresh, ...opts };
    const deadline = performance.now() + budgetMs;
    const tried = new Set<string>();
    const apps = new Map<string, Promise<AppCredentials>>();
    let refreshed = 0;
    let failed = 0;
    let left = 0;
    for (;;) {
      const due = await this.dueTokens(batch);
      const fresh = due.filter((r) => !tried.has(tokenKeyId({ kind: r.kind, appId: r.app_id, tenantKey: r.tenant_key })));
      if (fresh.length === 0) break;
      let next = 0;
      const worker = async () => {
        while (next < fresh.length && performance.now() < deadline) {
          const row = fresh[next++]!;
          tried.add(tokenKeyId({ kind: row.kind, appId: row.app_id, tenantKey: row.tenant_key }));
          try {
            let app = apps.get(row.app_id);
            if (!app) apps.set(row.app_id, (app = this.app(row.app_id)));
            const got = row.kind === 'app' ? await this.appLookup(await app) : await this.tenantLookup(await app, row.tenant_key);
            // A still-valid token handed back because its refresh failed is not a refresh.
            if (got.refreshError !== undefined) throw got.refreshError;
            refreshed += 1;
          } catch (err) {
            failed += 1;
            this.log.warn({ kind: row.kind, appId: row.app_id, tenantKey: row.tenant_key, err: (err as Error).message }, 'token refresh failed');
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, fresh.length) }, worker));
      if (performance.now() >= deadline) {
        left = fresh.length - next;
        if (left > 0) this.log.warn({ left, refreshed }, 'token refresh tick ran out of time; the next tick goes on');
        break;
      }
    }
    return { refreshed, failed, left };
  }

  private dueTokens(limit: number) {
    const now = this.clock.sql();
    return this.db
      .selectFrom('access_tokens as t')
      .leftJoin('tenants as tn', (j) => j.onRef('tn.tenant_key', '=', 't.tenant_key').onRef('tn.app_id', '=', 't.app_id'))
      .select(['t.kind', 't.app_id', 't.tenant_key'])
      .where((eb) => eb.or([eb('t.refresh_at', '<=', now), eb('t.token_sealed', 'is', null)]))
      .where((eb) => eb.or([eb('t.kind', '=', 'app'), eb('tn.status', '=', 'active')]))
      // Backing off after failures: not before its time. Being minted elsewhere: not twice.
      .where((eb) => eb.or([eb('t.next_attempt_at', 'is', null), eb('t.next_attempt_at', '<=', now)]))
      .where(sql<boolean>`(t.minting_until is null or t.minting_until <= clock_timestamp())`)
      // Failing tokens last, then the most urgent: no token at all, then the earliest refresh time.
      .orderBy(sql`t.failures > 0`)
      .orderBy(sql`t.refresh_at asc nulls first`)
      .limit(limit)
      .execute();
  }

  /** What the API shows of a token: its times and its failures, never the token. */
  async health(kind: 'app' | 'tenant', appId: string, tenantKey = ''): Promise<TokenHealth> {
    const row = await findTokenRow(this.db, { kind, appId, tenantKey });
    const iso = (d: Date | null) => (d ? d.toISOString() : null);
    const failures = row?.failures ?? 0;
    const lastError =
      row?.last_error_code && row.last_error_at
        ? {
            code: row.last_error_code,
            class: (row.last_error_class ?? 'internal') as MintErrorClass,
            message: row.last_error_message ?? '',
            at: row.last_error_at.toISOString(),
          }
        : null;
    let status: TokenHealth['status'] = 'missing';
    const now = this.clock.now().getTime();
    if (failures > 0) status = 'failing';
    else if (row?.token_sealed && row.expires_at) {
      if (row.expires_at.getTime() <= now) status = 'expired';
      else if (row.refresh_at && row.refresh_at.getTime() <= now) status = 'refresh_due';
      else status = 'valid';
    }
    return {
      status,
      expiresAt: iso(row?.token_sealed ? row.expires_at : null),
      refreshAt: iso(row?.token_sealed ? row.refresh_at : null),
      mintedAt: iso(row?.minted_at ?? null),
      mintCount: row?.mint_count ?? 0,
      failures,
      nextAttemptAt: row?.next_attempt_at && row.next_attempt_at.getTime() > now ? row.next_attempt_at.toISOString() : null,
      lastError,
    };
  }

  // ------------------------------------------------------------------ single flight + claim

  /**
   * The stored token while it is fresh, else a new one. Concurrent callers in this process share
   * one lookup (one read, at most one mint); other processes are kept to one mint by the claim in
   * acquire. A caller that has just invalidated the token starts a lookup of its own (one already
   * under way may have read the rejected token) and later callers share that one.
   */
  private obtain(key: TokenKey, mint: Mint, opts: ObtainOptions = {}): Promise<Lookup> {
    const id = tokenKeyId(key);
    const shared = this.inflight.get(id);
    if (shared && !opts.afterInvalidation) return shared;
    const pending: Promise<Lookup> = (async () => {
      const fresh = await this.readFresh(key);
      if (fresh) return { token: fresh };
      return this.acquire(key, mint);
    })().finally(() => {
      if (this.inflight.get(id) === pending) this.inflight.delete(id);
    });
    this.inflight.set(id, pending);
    return pending;
  }

  /**
   * Claims the mint and mints; or, when another process holds the claim, waits for its token;
   * or, while the key backs off, hands out the stored token if it is still usable and refuses
   * otherwise. A failed mint with a usable token stored hands that token out too
   * (stale-while-revalidate): a short outage of Lark's auth endpoint does not fail the callers.
   */
  private async acquire(key: TokenKey, mint: Mint): Promise<Lookup> {
    const lease = randomUUID();
    const started = performance.now();
    let poll = MINT_POLL_MS.first;
    for (;;) {
      const now = this.clock.sql();
      const claimed = await claimMint(this.db, key, lease, this.options.mintLeaseMs, now, USABLE_MARGIN_SECONDS);
      if (claimed) return this.mintClaimed(key, lease, claimed, mint);

      const state = await readMintState(this.db, key, now, USABLE_MARGIN_SECONDS);
      if (!state) continue; // deleted between the two statements (a purge): claim a new row
      if (state.fresh) {
        const token = this.openStored(key, state);
        if (token) return { token };
        // A fresh token this process cannot open would block every claim until its refresh
        // time: drop it (only if it is still that one) and mint.
        if (state.token_hash) await invalidateToken(this.db, key, state.token_hash);
        continue;
      }
      const stale = state.usable ? this.openStored(key, state) : undefined;
      if (state.backing_off) {
        const err = new TokenUnavailableError(
          key.kind === 'app' ? `the app access token of ${key.appId}` : `the tenant access token of ${key.tenantKey}`,
          state.failures,
          (state.last_error_class ?? 'internal') as MintErrorClass,
          state.last_error_code ?? 'unknown',
          state.next_attempt_at ?? new Date(),
        );
        if (stale) return { token: stale, refreshError: err };
        throw err;
      }
      if (!state.leased) continue; // the other claim just ended: try to claim again
      // Another process is minting: its token is stored within moments, unless it is stuck or died.
      if (stale && performance.now() - started >= STALE_WAIT_MS) return { token: stale };
      await sleep(poll);
      poll = Math.min(poll * 2, MINT_POLL_MS.max);
    }
  }

  /** Holding the claim: mint, store and release; on failure record it (backoff) and release. */
  private async mintClaimed(key: TokenKey, lease: string, claimed: MintState, mint: Mint): Promise<Lookup> {
    try {
      if (key.kind === 'tenant') await this.assertTenantServed(this.db, key, false);
      const { token, expire } = await mint();
      await this.storeMinted(key, token, expire, shiftOf(claimed, this.options.refreshWindow), lease);
      return { token };
    } catch (err) {
      await this.recordFailure(key, err, lease);
      const stale = claimed.usable && !isTenantGone(err) ? this.openStored(key, claimed) : undefined;
      if (!stale) throw err;
      this.log.warn(
        { kind: key.kind, appId: key.appId, tenantKey: key.tenantKey, err: (err as Error).message },
        'token refresh failed; the stored token is used until it is refreshed or expires',
      );
      return { token: stale, refreshError: err };
    }
  }

  private async readFresh(key: TokenKey): Promise<string | undefined> {
    const row = await findFreshToken(this.db, key, this.clock.sql());
    return row?.token_sealed ? this.open(key, row.token_sealed) : undefined;
  }

  private openStored(key: TokenKey, state: Pick<MintState, 'token_sealed'>): string | undefined {
    return state.token_sealed ? this.open(key, state.token_sealed) : undefined;
  }

  private open(key: TokenKey, sealed: Buffer): string | undefined {
    try {
      return this.sealer.open(sealed, tokenContext(key));
    } catch (err) {
      if (!(err instanceof SealError)) throw err;
      // A token is only a copy of what Lark will issue again. Sealed under a key this process no
      // longer holds (ENCRYPTION_KEY changed without ENCRYPTION_KEYS_RETIRED), it would otherwise
      // fail every call until it expired; minting a new one overwrites it.
      this.log.warn({ kind: key.kind, appId: key.appId, tenantKey: key.tenantKey, reason: err.message }, 'stored token cannot be opened; minting a new one');
      return undefined;
    }
  }

  /**
   * Stores a minted token and ends the claim. A tenant token only while the tenant is still
   * served by this app: the tenant row is locked (shared) for the check, so an uninstall commits
   * either before (and this refuses) or after (and deletes what this stored).
   */
  private async storeMinted(key: TokenKey, token: string, expire: number, previousShiftSeconds: number | null, lease: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      if (key.kind === 'tenant') await this.assertTenantServed(trx, key, true);
      await this.write(trx, key, token, expire, previousShiftSeconds, lease);
    });
  }

  private async write(
    db: Kysely<Database>,
    key: TokenKey,
    token: string,
    expire: number,
    previousShiftSeconds: number | null,
    lease: string | null,
  ): Promise<void> {
    const plan = planRefresh({
      key: tokenKeyId(key),
      nowMs: this.clock.now().getTime(),
      expireSeconds: expire,
      previousShiftSeconds,
      window: this.options.refreshWindow,
    });
    await storeMintedToken(
      db,
      key,
      { sealed: this.sealer.seal(token, tokenContext(key)), hash: hashToken(token), expireSeconds: expire, refreshAfterSeconds: plan.refreshAfterSeconds },
      this.clock.sql(),
      lease,
    );
    this.metrics.tokenMints.inc({ kind: key.kind, outcome: 'success' });
  }

  /** The tenant may have uninstalled (and been purged), or moved to another app, since the caller looked. */
  private async assertTenantServed(db: Kysely<Database>, key: TokenKey, lock: boolean): Promise<void> {
    let q = db.selectFrom('tenants').select(['status', 'app_id']).where('tenant_key', '=', key.tenantKey);
    if (lock) q = q.forShare();
    const tenant = await q.executeTakeFirst();
    if (!tenant || tenant.status === 'uninstalled') throw new TenantNotActiveError(key.tenantKey, 'has uninstalled the app');
    if (tenant.app_id !== key.appId) {
      throw new TenantNotActiveError(key.tenantKey, `is now served by app ${tenant.app_id}, not ${key.appId}`);
    }
  }

  /**
   * Records a failed mint (count, class, backoff) and ends the claim in one transaction. A tenant
   * that is gone is not a failure of its token, just the end of it.
   */
  private async recordFailure(key: TokenKey, err: unknown, lease: string): Promise<void> {
    if (isTenantGone(err)) {
      await releaseMint(this.db, key, lease).catch(() => undefined);
      return;
    }
    const cls = mintErrorClass(err);
    if (cls !== 'app_ticket') this.metrics.tokenMints.inc({ kind: key.kind, outcome: 'failure' });
    const spread = phaseFraction(tokenKeyId(key), 'backoff');
    try {
      await recordMintFailure(
        this.db,
        key,
        { code: mintErrorCode(err), cls, message: (err as Error).message },
        this.clock.sql(),
        (failures) => backoffSeconds(failures, cls, this.options.backoff, spread),
        lease,
      );
    } catch {
      // The database is failing too: at worst the claim lapses on its own.
      await releaseMint(this.db, key, lease).catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------ upstream mints

  private async mintAppToken(app: AppCredentials): Promise<{ token: string; expire: number }> {
    if (app.kind === 'custom') {
      const res = await this.http.call<{ app_access_token?: string; expire?: number }>(app.baseUrl, {
        method: 'POST',
        path: '/open-apis/auth/v3/app_access_token/internal',
        body: { app_id: app.appId, app_secret: app.secret() },
      });
      return this.tokenFrom(res.body.app_access_token, res.body.expire, 'app_access_token');
    }
    let ticket = await this.tickets.get(app.appId);
    if (!ticket) {
      await this.tickets.requestResend(app, 'missing');
      ticket = await this.tickets.waitFor(app.appId);
      if (!ticket) throw new AppTicketMissingError(app.appId);
    }
    try {
      return await this.callStoreAppToken(app, ticket.ticket);
    } catch (err) {
      if (!(err instanceof LarkApiError) || !err.isTicketInvalid) throw err;
      // Lark no longer accepts our ticket: ask for a new push and try once more with it.
      await this.tickets.requestResend(app, 'rejected');
      const next = await this.tickets.waitFor(app.appId, ticket.hash);
      if (!next) throw new AppTicketMissingError(app.appId);
      return this.callStoreAppToken(app, next.ticket);
    }
  }

  private async mintTenantToken(app: AppCredentials, tenantKey: string): Promise<{ token: string; expire: number }> {
    if (app.kind === 'custom') {
      const res = await this.http.call<{ tenant_access_token?: string; expire?: number }>(app.baseUrl, {
        method: 'POST',
        path: '/open-apis/auth/v3/tenant_access_token/internal',
        body: { app_id: app.appId, app_secret: app.secret() },
      });
      return this.tokenFrom(res.body.tenant_access_token, res.body.expire, 'tenant_access_token');
    }
    // The app token is a lookup of its own (it may be fresh, or minted under its own claim); no
    // connection is held meanwhile, so nesting it inside this claim cannot starve the pool.
    const appToken = await this.appToken(app);
    try {
      return await this.callStoreTenantToken(app, appToken, tenantKey);
    } catch (err) {
      if (!(err instanceof LarkApiError) || !err.isTokenInvalid) throw err;
      // Lark refused the app token: drop it (only if it is still the stored one) and go once more.
      await invalidateToken(this.db, { kind: 'app', appId: app.appId, tenantKey: '' }, hashToken(appToken));
      const freshAppToken = await this.appToken(app, { afterInvalidation: true });
      return this.callStoreTenantToken(app, freshAppToken, tenantKey);
    }
  }

  private async callStoreAppToken(app: AppCredentials, ticket: string) {
    const res = await this.http.call<{ app_access_token?: string; expire?: number }>(app.baseUrl, {
      method: 'POST',
      path: '/open-apis/auth/v3/app_access_token',
      body: { app_id: app.appId, app_secret: app.secret(), app_ticket: ticket },
    });
    return this.tokenFrom(res.body.app_access_token, res.body.expire, 'app_access_token');
  }

  private async callStoreTenantToken(app: AppCredentials, appToken: string, tenantKey: string) {
    const res = await this.http.call<{ tenant_access_token?: string; expire?: number }>(app.baseUrl, {
      method: 'POST',
      path: '/open-apis/auth/v3/tenant_access_token',
      body: { app_access_token: appToken, tenant_key: tenantKey },
    });
    return this.tokenFrom(res.body.tenant_access_token, res.body.expire, 'tenant_access_token');
  }

  private tokenFrom(token: string | undefined, expire: number | undefined, field: string) {
    // Some clients cached `undefined` when a body lacked the token (node-sdk #182); never do that.
    if (typeof token !== 'string' || token === '' || typeof expire !== 'number' || expire <= 0) {
      throw new LarkTransportError(field, `answer lacked ${field} or expire`);
    }
    return { token, expire };
  }

  // ------------------------------------------------------------------ lookups

  private async app(appId: string): Promise<AppCredentials> {
    const row = await findApp(this.db, appId);
    if (!row) throw new AppError(404, 'app_not_found', `app ${appId} is not registered`);
    return toCredentials(row, this.sealer);
  }

  /** The tenant's app, checked active; concurrent callers for one tenant share the lookup. */
  private tenantApp(tenantKey: string): Promise<{ app: AppCredentials }> {
    const shared = this.tenantLookups.get(tenantKey);
    if (shared) return shared;
    const pending = this.lookupTenantApp(tenantKey).finally(() => this.tenantLookups.delete(tenantKey));
    this.tenantLookups.set(tenantKey, pending);
    return pending;
  }

  private async lookupTenantApp(tenantKey: string): Promise<{ app: AppCredentials }> {
    const tenant = await this.db
      .selectFrom('tenants')
      .select(['app_id', 'status'])
      .where('tenant_key', '=', tenantKey)
      .executeTakeFirst();
    if (!tenant) throw new TenantNotFoundError(tenantKey);
    if (tenant.status === 'uninstalled') throw new TenantNotActiveError(tenantKey, 'has uninstalled the app');
    return { app: await this.app(tenant.app_id) };
  }
}

/** The tenant uninstalled (or moved to another app) while its token was looked up or minted. */
function isTenantGone(err: unknown): boolean {
  return err instanceof TenantNotActiveError;
}
