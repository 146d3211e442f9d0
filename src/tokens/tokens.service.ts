import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { appNotFound, findApp, findTenantApp } from '../apps/apps.repository.js';
import { toCredentials, type AppCredentials } from '../apps/app-credentials.js';
import type { AppRow } from '../apps/apps.table.js';
import { systemClock, type Clock } from '../clock.js';
import type { Sealer } from '../crypto/sealer.js';
import type { Database } from '../db/database.js';
import type { IssuedToken } from '../lark/auth-api.js';
import { LarkApiError } from '../lark/errors.js';
import type { LarkHttp } from '../lark/http.js';
import type { Metrics } from '../metrics/metrics.js';
import { TenantNotActiveError, TenantNotFoundError } from '../tenants/tenant-errors.js';
import { AccessTokenRows, assertTenantServed } from './access-token-rows.js';
import { mintAppToken, mintTenantToken, type AppTokenSource } from './access-token-mints.js';
import type { AppTicketsService } from './app-tickets.service.js';
import { defaultMintBackoff, type MintBackoff } from './mint-errors.js';
import { defaultRefreshWindow, shiftOf, type RefreshWindow } from './refresh-plan.js';
import { defaultRefreshTick, dueAccessTokens, refreshDue, type RefreshTally, type RefreshTickOptions } from './refresh-due.js';
import { toTokenHealth, type TokenHealth } from './token-health.js';
import { TokenStore, type Lookup, type ObtainOptions } from './token-store.js';
import { clearMintBackoff, deleteTenantTokens, findMintState, findTokenRow, type MintState, type TokenKey } from './tokens.repository.js';

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

export const defaultTokenOptions: TokenOptions = {
  refreshWindow: defaultRefreshWindow,
  clock: systemClock,
  refresh: defaultRefreshTick,
  mintLeaseMs: 30_000,
  backoff: defaultMintBackoff,
};

/** A tenant's token use with its app already looked up (see TokenService.forTenant). */
export interface TenantTokens {
  readonly tenantKey: string;
  readonly app: AppCredentials;
  withToken<T>(call: (token: string, baseUrl: string) => Promise<T>): Promise<T>;
}

/**
 * The token lifecycle: app_ticket -> app_access_token -> tenant_access_token per tenant_key, and
 * custom apps' internal tokens. Each token is obtained through the token store (token-store.ts:
 * minted once across processes, kept sealed, stale-while-valid) from its rows in
 * `access_tokens` (access-token-rows.ts) by the mints in access-token-mints.ts.
 */
export class TokenService {
  private readonly rows: AccessTokenRows;
  private readonly store: TokenStore<TokenKey, string, IssuedToken, MintState>;
  /** Per tenant: the tenant-and-app lookup that concurrent callers share. */
  private readonly tenantLookups = new Map<string, Promise<{ app: AppCredentials }>>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly http: LarkHttp,
    private readonly tickets: AppTicketsService,
    metrics: Metrics,
    private readonly log: Logger,
    private readonly options: TokenOptions = defaultTokenOptions,
  ) {
    this.rows = new AccessTokenRows(db, sealer, metrics, log, options);
    this.store = new TokenStore<TokenKey, string, IssuedToken, MintState>(this.rows, log);
  }

  async getAppAccessToken(appId: string): Promise<string> {
    return (await this.appLookup(await this.app(appId))).value;
  }

  /** `reread`: from the tenant's token row, not a token this process holds (see AccessTokenRows). */
  async getTenantAccessToken(tenantKey: string, opts: { reread?: boolean } = {}): Promise<string> {
    const { app } = await this.tenantApp(tenantKey);
    return (await this.tenantLookup(app, tenantKey, opts)).value;
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
    return this.forTenantOf(tenantKey, app);
  }

  /**
   * As forTenant, for a caller that has already read the tenant (active) and its app's row in a
   * read of its own (a change event's handler: findTenantAppConnector): no statement here.
   */
  forTenantApp(tenantKey: string, app: AppRow): TenantTokens {
    return this.forTenantOf(tenantKey, toCredentials(app, this.sealer));
  }

  private forTenantOf(tenantKey: string, app: AppCredentials): TenantTokens {
    const key: TokenKey = { kind: 'tenant', appId: app.appId, tenantKey };
    return {
      tenantKey,
      app,
      withToken: async (call) => {
        const token = (await this.tenantLookup(app, tenantKey)).value;
        try {
          return await call(token, app.baseUrl);
        } catch (err) {
          if (!(err instanceof LarkApiError) || !err.isTokenInvalid) throw err;
          this.log.info({ tenantKey, code: err.code }, 'tenant token rejected; minting a new one and retrying once');
          await this.rows.invalidate(key, token);
          const fresh = (await this.tenantLookup(app, tenantKey, { afterInvalidation: true })).value;
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
    const prev = await findMintState(db, key, this.options.clock.sql());
    await this.rows.write(db, key, { token, expire }, prev ? shiftOf(prev, this.options.refreshWindow) : null, null);
    await clearMintBackoff(db, key.appId);
  }

  /** New credentials for an app were stored: its failing tokens may try again at once. */
  async credentialsChanged(appId: string, db: Kysely<Database> = this.db): Promise<void> {
    await clearMintBackoff(db, appId);
  }

  /** Drops a token that an upstream call rejected (only if it is still the stored one). */
  async invalidate(key: TokenKey, token: string): Promise<boolean> {
    return this.rows.invalidate(key, token);
  }

  /**
   * Deletes `appId`'s tokens for the tenant (another app serving it keeps its own). A mint in
   * flight stores nothing once the tenant is uninstalled (the store checks, under the tenant
   * row's lock), so after an uninstall nothing brings a token back.
   */
  async purgeTenant(tenantKey: string, appId: string): Promise<number> {
    this.rows.forget({ kind: 'tenant', appId, tenantKey });
    return deleteTenantTokens(this.db, tenantKey, appId);
  }

  /** The minute cron (refresh-due.ts): mints every due app and tenant token before a caller needs it. */
  async refreshDue(opts: Partial<RefreshTickOptions> = {}): Promise<RefreshTally> {
    const due = dueAccessTokens(this.db, this.options.clock, {
      app: (appId) => this.app(appId),
      refresh: async (key, app) => {
        // From the row: a token this process holds until its refresh time (by its own clock) must
        // not stand in for a due row (by the database's clock).
        const got = key.kind === 'app' ? await this.appLookup(app, { reread: true }) : await this.tenantLookup(app, key.tenantKey, { reread: true });
        // A still-valid token handed back because its refresh failed is not a refresh.
        if (got.refreshError !== undefined) throw got.refreshError;
      },
    });
    return refreshDue(due, { ...this.options.refresh, ...opts }, this.log);
  }

  /** What the API shows of a token: its times and its failures, never the token. */
  async health(kind: 'app' | 'tenant', appId: string, tenantKey = ''): Promise<TokenHealth> {
    return toTokenHealth(await findTokenRow(this.db, { kind, appId, tenantKey }), this.options.clock.now());
  }

  private appLookup(app: AppCredentials, opts: ObtainOptions = {}): Promise<Lookup<string>> {
    const key: TokenKey = { kind: 'app', appId: app.appId, tenantKey: '' };
    return this.store.obtain(key, () => mintAppToken(this.http, this.tickets, app), opts);
  }

  private tenantLookup(app: AppCredentials, tenantKey: string, opts: ObtainOptions = {}): Promise<Lookup<string>> {
    const key: TokenKey = { kind: 'tenant', appId: app.appId, tenantKey };
    const appToken: AppTokenSource = {
      get: async (o) => (await this.appLookup(app, o)).value,
      invalidate: (token) => this.rows.invalidate({ kind: 'app', appId: app.appId, tenantKey: '' }, token),
    };
    return this.store.obtain(
      key,
      async () => {
        await assertTenantServed(this.db, key, false);
        return mintTenantToken(this.http, app, tenantKey, appToken);
      },
      opts,
    );
  }

  private async app(appId: string): Promise<AppCredentials> {
    const row = await findApp(this.db, appId);
    if (!row) throw appNotFound(appId);
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
    const tenant = await findTenantApp(this.db, tenantKey);
    if (!tenant) throw new TenantNotFoundError(tenantKey);
    if (tenant.status === 'uninstalled') throw new TenantNotActiveError(tenantKey, 'has uninstalled the app');
    if (!tenant.app) throw appNotFound(tenant.appId);
    return { app: toCredentials(tenant.app, this.sealer) };
  }
}
