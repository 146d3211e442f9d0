import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { toCredentials, type AppCredentials } from '../apps/app-credentials.js';
import { findApp } from '../apps/apps.repository.js';
import type { Sealer } from '../crypto/sealer.js';
import type { Database } from '../db/database.js';
import { LarkApiError } from '../lark/errors.js';
import type { LarkHttp } from '../lark/http.js';
import { exchangeCode, refreshUserToken, userInfo, type LarkUserInfo, type UserTokens } from '../lark/user-auth-api.js';
import { TokenStore } from '../tokens/token-store.js';
import type { TenantTokens } from '../tokens/tokens.service.js';
import { UserAuthorizationRequiredError } from './grant-errors.js';
import { GrantRows, type GrantState } from './grant-rows.js';
import { deleteGrant, dueGrants, endGrant, findGrant, listGrants, storeSignIn, type GrantKey } from './grants.repository.js';
import type { GrantStatus, UserGrantRow } from './grants.table.js';

/** What the API and the admin page show of a grant: who, what, when; never a token. */
export interface GrantView {
  appId: string;
  tenantKey: string;
  openId: string;
  unionId: string | null;
  name: string | null;
  scopes: string[];
  status: GrantStatus;
  statusReason: string | null;
  authorizedAt: string;
  refreshedAt: string | null;
  accessExpiresAt: string | null;
  refreshExpiresAt: string | null;
  lastError: { class: string; code: string | null; at: string } | null;
}

export function toGrantView(r: UserGrantRow): GrantView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    appId: r.app_id,
    tenantKey: r.tenant_key,
    openId: r.open_id,
    unionId: r.union_id,
    name: r.name,
    scopes: r.scopes,
    status: r.status,
    statusReason: r.status_reason,
    authorizedAt: r.authorized_at.toISOString(),
    refreshedAt: iso(r.refreshed_at),
    accessExpiresAt: iso(r.access_expires_at),
    refreshExpiresAt: iso(r.refresh_expires_at),
    lastError: r.last_error_class && r.last_error_at ? { class: r.last_error_class, code: r.last_error_code, at: r.last_error_at.toISOString() } : null,
  };
}

export interface GrantOptions {
  /** How long a claim to refresh lasts; a refresh call times out well within it. */
  refreshLeaseMs: number;
  /** A refresh token this close to expiring is refreshed by the cron, used or not. */
  keepAliveSeconds: number;
}

export const defaultGrantOptions: GrantOptions = { refreshLeaseMs: 30_000, keepAliveSeconds: 86_400 };

/** Codes Lark answers a user token with when it is no good (auth.md §6, user-oauth.md). */
const USER_TOKEN_INVALID: ReadonlySet<number> = new Set([99991668, 99991677]);

/**
 * Users' authorizations (OAuth code flow): the sign-in's grant, and user access tokens obtained
 * through the same token store as app and tenant tokens (token-store.ts): refreshed at most once
 * across processes under a lease on the grant's row, re-read after the claim, stored the moment
 * Lark answers (the refresh token sent is dead by then), served stale while still valid. A grant
 * whose refresh token is gone is marked `needs_reauth` and never retried.
 */
export class GrantsService {
  private readonly rows: GrantRows;
  private readonly store: TokenStore<GrantKey, string, UserTokens, GrantState>;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly http: LarkHttp,
    private readonly log: Logger,
    private readonly options: GrantOptions = defaultGrantOptions,
  ) {
    this.rows = new GrantRows(db, sealer, options.refreshLeaseMs);
    this.store = new TokenStore(this.rows, log);
  }

  async app(appId: string): Promise<AppCredentials | undefined> {
    const row = await findApp(this.db, appId);
    return row ? toCredentials(row, this.sealer) : undefined;
  }

  /**
   * Completes a sign-in: exchanges the code (with the PKCE verifier), asks Lark who it is, and
   * stores the grant. The user's tenant must be one this app serves; the caller checks that with
   * `who` before `keep` stores anything, so a user of another company leaves nothing behind.
   */
  async exchange(app: AppCredentials, input: { code: string; verifier: string; redirectUri: string }) {
    const tokens = await exchangeCode(this.http, app, input);
    const who = await userInfo(this.http, app.baseUrl, tokens.accessToken);
    return {
      who,
      keep: async (): Promise<GrantView> => {
        const key = { appId: app.appId, tenantKey: who.tenantKey, openId: who.openId };
        const row = await storeSignIn(this.db, key, who, this.rows.seal(key, tokens));
        this.log.info({ appId: app.appId, tenantKey: who.tenantKey, openId: who.openId, scopes: tokens.scopes.length }, 'user signed in: grant stored');
        return toGrantView(row);
      },
    };
  }

  /** A user access token for the grant: the stored one while fresh, else refreshed once. */
  async token(key: GrantKey): Promise<string> {
    const grant = await findGrant(this.db, key);
    if (!grant) throw new UserAuthorizationRequiredError(key, null, 'this user never authorized larksync');
    if (grant.status !== 'active') throw new UserAuthorizationRequiredError(key, grant.name, grant.status_reason ?? grant.status);
    const app = await this.app(key.appId);
    if (!app) throw new UserAuthorizationRequiredError(key, grant.name, `the app ${key.appId} is no longer registered`);
    try {
      const lookup = await this.store.obtain(key, async (claimed) => refreshUserToken(this.http, app, this.rows.refreshTokenOf(key, claimed)));
      return lookup.value;
    } catch (err) {
      // A refresh that ended the grant says so in the grant's words, not Lark's.
      const after = await findGrant(this.db, key);
      if (after && after.status !== 'active') throw new UserAuthorizationRequiredError(key, after.name, after.status_reason ?? after.status);
      throw err;
    }
  }

  /**
   * Tokens for calls made as a user, in the shape sync clients use for tenant tokens. A token Lark
   * rejects (99991668/99991677) is refreshed and the call retried once.
   */
  async forUser(key: GrantKey): Promise<TenantTokens> {
    const app = await this.app(key.appId);
    if (!app) throw new UserAuthorizationRequiredError(key, null, `the app ${key.appId} is no longer registered`);
    return {
      tenantKey: key.tenantKey,
      app,
      withToken: async (call) => {
        const token = await this.token(key);
        try {
          return await call(token, app.baseUrl);
        } catch (err) {
          if (!(err instanceof LarkApiError) || !USER_TOKEN_INVALID.has(err.code)) throw err;
          // Due at once: the next lookup refreshes (once, across processes) and the call is retried.
          await sql`update user_grants set refresh_at = now()
                     where app_id = ${key.appId} and tenant_key = ${key.tenantKey} and open_id = ${key.openId} and status = 'active'`.execute(this.db);
          return call(await this.token(key), app.baseUrl);
        }
      },
    };
  }

  async list(tenantKey: string): Promise<GrantView[]> {
    return (await listGrants(this.db, tenantKey)).map(toGrantView);
  }

  async get(key: GrantKey): Promise<GrantView | undefined> {
    const row = await findGrant(this.db, key);
    return row ? toGrantView(row) : undefined;
  }

  /** Forgets a user's grant (every app's, in this tenant); the user can sign in again. */
  async remove(tenantKey: string, openId: string): Promise<boolean> {
    return (await deleteGrant(this.db, tenantKey, openId)) > 0;
  }

  /** Lark says the user revoked the authorization (auth.user_access_token.revoked_v4). */
  async revoked(appId: string, tenantKey: string | null, openId: string, reason: string): Promise<number> {
    const rows = await this.db
      .selectFrom('user_grants')
      .select(['app_id', 'tenant_key', 'open_id'])
      .where('app_id', '=', appId)
      .where('open_id', '=', openId)
      .$if(tenantKey !== null, (q) => q.where('tenant_key', '=', tenantKey!))
      .execute();
    let n = 0;
    for (const r of rows) {
      if (await endGrant(this.db, { appId: r.app_id, tenantKey: r.tenant_key, openId: r.open_id }, 'revoked', reason)) n += 1;
    }
    return n;
  }

  /**
   * The minute cron: keeps refresh tokens alive. A refresh token lives about 7 days unused
   * (user-oauth.md §7), so grants whose refresh token nears its end are refreshed whether or not
   * anyone used them since. Each goes through the token store: once across processes.
   */
  async refreshDue(limit = 200): Promise<{ refreshed: number; failed: number }> {
    // Access tokens are refreshed when someone needs one; only the chain's end forces a refresh.
    await sql`
      update user_grants set refresh_at = now()
       where status = 'active' and refresh_sealed is not null and refresh_at > now()
         and refresh_expires_at < now() + make_interval(secs => ${this.options.keepAliveSeconds})`.execute(this.db);
    let refreshed = 0;
    let failed = 0;
    for (const key of await dueGrants(this.db, limit, this.options.keepAliveSeconds)) {
      try {
        await this.token(key);
        refreshed += 1;
      } catch (err) {
        failed += 1;
        this.log.warn({ ...key, err: (err as Error).message }, 'user grant refresh failed');
      }
    }
    return { refreshed, failed };
  }
}

export type { LarkUserInfo };
