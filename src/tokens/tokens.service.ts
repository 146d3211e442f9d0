import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Database } from '../db/database.js';
import { SealError, type Sealer } from '../crypto/sealer.js';
import type { LarkHttp } from '../lark/http.js';
import { LarkApiError, LarkTransportError } from '../lark/errors.js';
import type { Metrics } from '../metrics/metrics.js';
import { AppError } from '../errors.js';
import { findApp } from '../apps/apps.repository.js';
import { toCredentials, type AppCredentials } from '../apps/app-credentials.js';
import type { AppTicketsService } from './app-tickets.service.js';
import { defaultRefreshWindow, planRefresh, shiftOf, type RefreshWindow } from './refresh-plan.js';
import {
  deleteTenantTokens,
  findFreshToken,
  findMintState,
  findTokenRow,
  invalidateToken,
  lockTokenKey,
  recordMintError,
  storeMintedToken,
  tokenContext,
  tokenKeyId,
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
};

export interface TokenHealth {
  status: 'valid' | 'refresh_due' | 'expired' | 'missing' | 'error';
  expiresAt: string | null;
  refreshAt: string | null;
  mintedAt: string | null;
  mintCount: number;
  lastError: { code: string; message: string; at: string } | null;
}

interface ObtainOptions {
  /** The caller has just dropped a token Lark rejected: do not share a lookup that may have read it. */
  afterInvalidation?: boolean;
}

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
 * however many callers ask at once: an in-process promise map (single flight) plus a Postgres
 * advisory lock with a re-read (across processes).
 */
export class TokenService {
  /** Per token key: the lookup (stored token, else a mint) that concurrent callers share. */
  private readonly inflight = new Map<string, Promise<string>>();
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
    const key: TokenKey = { kind: 'app', appId: app.appId, tenantKey: '' };
    return this.obtain(key, () => this.produceAppToken(app, key), opts);
  }

  async getTenantAccessToken(tenantKey: string): Promise<string> {
    const { app } = await this.tenantApp(tenantKey);
    return this.tenantToken(app, tenantKey);
  }

  private tenantToken(app: AppCredentials, tenantKey: string, opts: ObtainOptions = {}): Promise<string> {
    const key: TokenKey = { kind: 'tenant', appId: app.appId, tenantKey };
    return this.obtain(key, () => this.produceTenantToken(app, key), opts);
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
   * hold: an uninstall deletes the tenant's tokens and a mint re-checks the tenant under its lock.
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

  /** Keeps a token that was minted outside the usual path (custom app registration checks credentials by minting). */
  async adopt(key: TokenKey, token: string, expire: number): Promise<void> {
    const prev = await findMintState(this.db, key, this.clock.sql());
    await this.store(this.db, key, token, expire, prev ? shiftOf(prev, this.options.refreshWindow) : null);
  }

  /** Drops a token that an upstream call rejected (only if it is still the stored one). */
  async invalidate(key: TokenKey, token: string): Promise<boolean> {
    return invalidateToken(this.db, key, hashToken(token));
  }

  /**
   * Deletes the tenant's tokens. Takes the tenants' mint locks first, so a mint in flight either
   * stores before the delete or, once the tenant is marked uninstalled, refuses to store at all.
   */
  async purgeTenant(tenantKey: string): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const owners = await trx
        .selectFrom('tenants')
        .select('app_id')
        .where('tenant_key', '=', tenantKey)
        .union(trx.selectFrom('access_tokens').select('app_id').where('kind', '=', 'tenant').where('tenant_key', '=', tenantKey))
        .execute();
      // A fixed order, so two purges of one tenant cannot deadlock each other.
      for (const appId of owners.map((o) => o.app_id).sort()) {
        await lockTokenKey(trx, { kind: 'tenant', appId, tenantKey });
      }
      return deleteTenantTokens(trx, tenantKey);
    });
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
            if (row.kind === 'app') await this.appToken(await app);
            else await this.tenantToken(await app, row.tenant_key);
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
      // Failing tokens last, then the most urgent: no token at all, then the earliest refresh time.
      .orderBy(sql`t.last_error_at is not null and (t.minted_at is null or t.last_error_at > t.minted_at)`)
      .orderBy(sql`t.refresh_at asc nulls first`)
      .limit(limit)
      .execute();
  }

  async health(kind: 'app' | 'tenant', appId: string, tenantKey = ''): Promise<TokenHealth> {
    const row = await findTokenRow(this.db, { kind, appId, tenantKey });
    const iso = (d: Date | null) => (d ? d.toISOString() : null);
    const lastError =
      row?.last_error_code && row.last_error_at
        ? { code: row.last_error_code, message: row.last_error_message ?? '', at: row.last_error_at.toISOString() }
        : null;
    let status: TokenHealth['status'] = 'missing';
    const now = this.clock.now().getTime();
    if (row?.token_sealed && row.expires_at) {
      if (row.expires_at.getTime() <= now) status = 'expired';
      else if (row.refresh_at && row.refresh_at.getTime() <= now) status = 'refresh_due';
      else status = 'valid';
    } else if (lastError) {
      status = 'error';
    }
    return {
      status,
      expiresAt: iso(row?.token_sealed ? row.expires_at : null),
      refreshAt: iso(row?.token_sealed ? row.refresh_at : null),
      mintedAt: iso(row?.minted_at ?? null),
      mintCount: row?.mint_count ?? 0,
      lastError,
    };
  }

  // ------------------------------------------------------------------ single flight + lock

  /**
   * The stored token while it is fresh, else a new one. Concurrent callers in this process share
   * one lookup (one read, at most one mint); other processes are kept to one mint by the lock in
   * lockAndMint. A caller that has just invalidated the token starts a lookup of its own (one
   * already under way may have read the rejected token) and later callers share that one.
   */
  private obtain(key: TokenKey, produce: () => Promise<string>, opts: ObtainOptions = {}): Promise<string> {
    const id = tokenKeyId(key);
    const shared = this.inflight.get(id);
    if (shared && !opts.afterInvalidation) return shared;
    const pending: Promise<string> = (async () => {
      const fresh = await this.readFresh(key);
      if (fresh) return fresh;
      return produce().catch((err: unknown) => this.recordFailure(key, err));
    })().finally(() => {
      if (this.inflight.get(id) === pending) this.inflight.delete(id);
    });
    this.inflight.set(id, pending);
    return pending;
  }

  private async readFresh(key: TokenKey): Promise<string | undefined> {
    const row = await findFreshToken(this.db, key, this.clock.sql());
    return row?.token_sealed ? this.open(key, row.token_sealed) : undefined;
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
   * Under the key's advisory lock: adopts a token another process minted meanwhile, else mints and
   * stores one. `mint` runs while this transaction holds a pool connection, so it must not need
   * another one (no ticket waits, no nested token lookups): with many keys minting at once, such
   * nested waits exhaust the pool and every mint times out.
   */
  private async lockAndMint(key: TokenKey, mint: () => Promise<{ token: string; expire: number }>): Promise<string> {
    return this.db.transaction().execute(async (trx) => {
      await lockTokenKey(trx, key);
      const row = await findMintState(trx, key, this.clock.sql());
      const again = row?.fresh && row.token_sealed ? this.open(key, row.token_sealed) : undefined;
      if (again) return again;
      if (key.kind === 'tenant') await this.assertTenantActive(trx, key.tenantKey);
      const { token, expire } = await mint();
      await this.store(trx, key, token, expire, row ? shiftOf(row, this.options.refreshWindow) : null);
      return token;
    });
  }

  private async store(db: Kysely<Database>, key: TokenKey, token: string, expire: number, previousShiftSeconds: number | null): Promise<void> {
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
    );
    this.metrics.tokenMints.inc({ kind: key.kind, outcome: 'success' });
  }

  /** Re-checked under the mint lock: the tenant may have uninstalled (and been purged) since the caller looked. */
  private async assertTenantActive(trx: Kysely<Database>, tenantKey: string): Promise<void> {
    const tenant = await trx.selectFrom('tenants').select('status').where('tenant_key', '=', tenantKey).executeTakeFirst();
    if (!tenant || tenant.status === 'uninstalled') {
      throw new AppError(409, 'tenant_not_active', `tenant ${tenantKey} has uninstalled the app`);
    }
  }

  private async recordFailure(key: TokenKey, err: unknown): Promise<never> {
    if (err instanceof AppError && err.code === 'tenant_not_active') throw err;
    if (!(err instanceof AppTicketMissingError)) {
      this.metrics.tokenMints.inc({ kind: key.kind, outcome: 'failure' });
    }
    const code =
      err instanceof LarkApiError ? String(err.code) : err instanceof AppError ? err.code : err instanceof LarkTransportError ? 'transport_error' : 'internal_error';
    await recordMintError(this.db, key, code, (err as Error).message, this.clock.sql()).catch(() => undefined);
    throw err;
  }

  // ------------------------------------------------------------------ upstream mints

  private async produceAppToken(app: AppCredentials, key: TokenKey): Promise<string> {
    if (app.kind === 'custom') {
      return this.lockAndMint(key, async () => {
        const res = await this.http.call<{ app_access_token?: string; expire?: number }>(app.baseUrl, {
          method: 'POST',
          path: '/open-apis/auth/v3/app_access_token/internal',
          body: { app_id: app.appId, app_secret: app.secret() },
        });
        return this.tokenFrom(res.body.app_access_token, res.body.expire, 'app_access_token');
      });
    }

    // The ticket is fetched (and waited for) before the lock, which must not be held across a wait.
    let ticket = await this.tickets.get(app.appId);
    if (!ticket) {
      await this.tickets.requestResend(app, 'missing');
      ticket = await this.tickets.waitFor(app.appId);
      if (!ticket) throw new AppTicketMissingError(app.appId);
    }
    const used = ticket;
    try {
      return await this.lockAndMint(key, () => this.callStoreAppToken(app, used.ticket));
    } catch (err) {
      if (!(err instanceof LarkApiError) || !err.isTicketInvalid) throw err;
      // Lark no longer accepts our ticket: ask for a new push and try once more with it.
      await this.tickets.requestResend(app, 'rejected');
      const next = await this.tickets.waitFor(app.appId, used.hash);
      if (!next) throw new AppTicketMissingError(app.appId);
      return this.lockAndMint(key, () => this.callStoreAppToken(app, next.ticket));
    }
  }

  private async produceTenantToken(app: AppCredentials, key: TokenKey): Promise<string> {
    if (app.kind === 'custom') {
      return this.lockAndMint(key, async () => {
        const res = await this.http.call<{ tenant_access_token?: string; expire?: number }>(app.baseUrl, {
          method: 'POST',
          path: '/open-apis/auth/v3/tenant_access_token/internal',
          body: { app_id: app.appId, app_secret: app.secret() },
        });
        return this.tokenFrom(res.body.tenant_access_token, res.body.expire, 'tenant_access_token');
      });
    }
    // The app token comes first, outside the tenant lock: getting it may mint, wait for a ticket
    // and take the app's lock, all of which need pool connections of their own.
    const appToken = await this.appToken(app);
    try {
      return await this.lockAndMint(key, () => this.callStoreTenantToken(app, appToken, key.tenantKey));
    } catch (err) {
      if (!(err instanceof LarkApiError) || !err.isTokenInvalid) throw err;
      // Lark refused the app token: drop it (only if it is still the stored one) and go once more.
      await invalidateToken(this.db, { kind: 'app', appId: app.appId, tenantKey: '' }, hashToken(appToken));
      const freshAppToken = await this.appToken(app, { afterInvalidation: true });
      return this.lockAndMint(key, () => this.callStoreTenantToken(app, freshAppToken, key.tenantKey));
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
    if (!tenant) throw new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
    if (tenant.status === 'uninstalled') {
      throw new AppError(409, 'tenant_not_active', `tenant ${tenantKey} has uninstalled the app`);
    }
    return { app: await this.app(tenant.app_id) };
  }
}
