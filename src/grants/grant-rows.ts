import { sql, type Kysely } from 'kysely';
import type { Sealer } from '../crypto/sealer.js';
import type { Database } from '../db/database.js';
import { LarkApiError, LarkTransportError } from '../lark/errors.js';
import type { UserTokens } from '../lark/user-auth-api.js';
import type { RowState, TokenRows } from '../tokens/token-store.js';
import { GrantUnavailableError, UserAuthorizationRequiredError } from './grant-errors.js';
import { endGrant, recordRefreshFailure, type GrantKey } from './grants.repository.js';
import type { GrantStatus, UserGrantRow } from './grants.table.js';

/**
 * A user access token is handed out while its refresh fails (stale-while-valid) only while it has
 * this long to live; and a token is refreshed this long before it expires (the ~1 minute grace
 * Lark gives the old access token after a refresh is no reason to cut it closer).
 */
const USABLE_MARGIN_SECONDS = 60;
const REFRESH_AHEAD_SECONDS = 600;

/**
 * Refresh errors that end the grant: the refresh token is invalid, expired (its own lifetime or
 * the 365-day cap), revoked, or was used already (user-oauth.md §7). The user must sign in again;
 * nothing retries them.
 */
const TERMINAL: ReadonlyMap<number, string> = new Map([
  [20026, 'the refresh token is not one Lark accepts (20026)'],
  [20037, 'the refresh token expired: a grant lasts 365 days, and a refresh token 7 days unused (20037)'],
  [20064, 'the refresh token was revoked or already used (20064)'],
  [20073, 'the refresh token was already used (20073)'],
]);
/** Lark asks to try again (20050 server error, 20072 unavailable). */
const TRANSIENT: ReadonlySet<number> = new Set([20050, 20072]);

export interface GrantState extends RowState {
  row: UserGrantRow;
}

export const grantId = (k: GrantKey) => `user:${k.appId}:${k.tenantKey}:${k.openId}`;
const context = (k: GrantKey, which: 'access' | 'refresh') => `user_grants.${which}:${k.appId}:${k.tenantKey}:${k.openId}`;

/** Backoff after a transient failure: 5 s doubling to 10 min, by failures in a row. */
const retryAfterMs = (failures: number) => Math.min(600_000, 5_000 * 2 ** Math.max(0, failures));

/**
 * User grants as the token store sees them. What makes them different from app and tenant tokens:
 * the "mint" is a refresh that spends the refresh token (single use: Lark kills it the moment it
 * answers), so the new tokens are stored by the very next statement, and some failures end the
 * grant for good instead of backing off.
 */
export class GrantRows implements TokenRows<GrantKey, string, UserTokens, GrantState> {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly leaseMs: number,
  ) {}

  id(key: GrantKey): string {
    return grantId(key);
  }

  async readFresh(key: GrantKey): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('user_grants')
      .select(['access_sealed'])
      .where('app_id', '=', key.appId)
      .where('tenant_key', '=', key.tenantKey)
      .where('open_id', '=', key.openId)
      .where('status', '=', 'active')
      .where('refresh_at', '>', sql<Date>`clock_timestamp()`)
      .executeTakeFirst();
    return row?.access_sealed ? this.openAccess(key, row.access_sealed) : undefined;
  }

  async claim(key: GrantKey, lease: string): Promise<GrantState | undefined> {
    const res = await sql<UserGrantRow>`
      update user_grants set mint_lease = ${lease}::uuid, minting_until = clock_timestamp() + make_interval(secs => ${this.leaseMs / 1000})
       where app_id = ${key.appId} and tenant_key = ${key.tenantKey} and open_id = ${key.openId}
         and status = 'active' and refresh_sealed is not null
         and (refresh_at is null or refresh_at <= clock_timestamp())
         and (minting_until is null or minting_until <= clock_timestamp())
         and (next_attempt_at is null or next_attempt_at <= clock_timestamp())
      returning *`.execute(this.db);
    const row = res.rows[0];
    return row ? this.state(row) : undefined;
  }

  async read(key: GrantKey): Promise<GrantState | undefined> {
    const row = await this.db
      .selectFrom('user_grants')
      .selectAll()
      .where('app_id', '=', key.appId)
      .where('tenant_key', '=', key.tenantKey)
      .where('open_id', '=', key.openId)
      .executeTakeFirst();
    return row ? this.state(row) : undefined;
  }

  open(key: GrantKey, s: GrantState): string | undefined {
    return s.row.access_sealed ? this.openAccess(key, s.row.access_sealed) : undefined;
  }

  async discard(key: GrantKey, s: GrantState): Promise<void> {
    // A token this process cannot open (a key retired without re-sealing): the grant cannot be
    // refreshed either, since its refresh token is sealed the same way.
    await endGrant(this.db, key, 'needs_reauth', 'its tokens are sealed under a key larksync no longer has', { errorClass: 'unreadable' });
    void s;
  }

  /** The refresh token a claim may spend. */
  refreshTokenOf(key: GrantKey, s: GrantState): string {
    if (!s.row.refresh_sealed) throw new UserAuthorizationRequiredError(key, s.row.name, 'it holds no refresh token (offline_access was not granted)');
    return this.sealer.open(s.row.refresh_sealed, context(key, 'refresh'));
  }

  /**
   * Lark answered: the refresh token that was sent is dead, these are the only ones left. Stored
   * at once, whatever became of the claim meanwhile (a claim that lapsed could only have spent
   * the same, already dead, refresh token); the claim itself ends only if it is still ours.
   */
  async store(key: GrantKey, t: UserTokens, _claimed: GrantState, lease: string): Promise<string> {
    const sealed = this.seal(key, t);
    await this.db
      .updateTable('user_grants')
      .set({
        access_sealed: sealed.access,
        refresh_sealed: sealed.refresh,
        access_expires_at: sealed.accessExpiresAt,
        refresh_expires_at: sealed.refreshExpiresAt,
        refresh_at: sealed.refreshAt,
        scopes: t.scopes.length > 0 ? t.scopes : sql<string[]>`scopes`,
        refreshed_at: sql<Date>`now()`,
        refresh_count: sql<number>`refresh_count + 1`,
        mint_lease: sql<string | null>`case when mint_lease = ${lease}::uuid then null else mint_lease end`,
        minting_until: sql<Date | null>`case when mint_lease = ${lease}::uuid then null else minting_until end`,
        failures: 0,
        next_attempt_at: null,
      })
      .where('app_id', '=', key.appId)
      .where('tenant_key', '=', key.tenantKey)
      .where('open_id', '=', key.openId)
      .execute();
    return t.accessToken;
  }

  async recordFailure(key: GrantKey, err: unknown, lease: string): Promise<{ serveStale: boolean }> {
    const code = err instanceof LarkApiError ? err.code : undefined;
    const terminal = code === undefined ? undefined : TERMINAL.get(code);
    if (terminal) {
      await endGrant(this.db, key, 'needs_reauth', terminal, { lease, errorClass: 'refresh_rejected', code: String(code) });
      return { serveStale: false };
    }
    const row = await this.read(key);
    const errorClass = code !== undefined && TRANSIENT.has(code) ? 'lark_unavailable' : err instanceof LarkTransportError ? 'lark_unreachable' : 'refresh_failed';
    await recordRefreshFailure(this.db, key, lease, {
      errorClass,
      code: code !== undefined ? String(code) : err instanceof LarkTransportError ? 'transport' : 'internal',
      retryAfterMs: retryAfterMs(row?.row.failures ?? 0),
    });
    return { serveStale: true };
  }

  unavailable(key: GrantKey, s: GrantState): Error {
    if (s.row.status !== 'active') return new UserAuthorizationRequiredError(key, s.row.name, s.row.status_reason ?? statusWords(s.row.status));
    return new GrantUnavailableError(key, s.row.last_error_class ?? 'refresh_failed', s.row.next_attempt_at);
  }

  /** The tokens of a sign-in or a refresh, sealed, with the times that go with them. */
  seal(key: GrantKey, t: UserTokens) {
    const now = Date.now();
    const ahead = Math.min(REFRESH_AHEAD_SECONDS, Math.floor(t.expiresIn / 4));
    return {
      access: this.sealer.seal(t.accessToken, context(key, 'access')),
      refresh: t.refreshToken ? this.sealer.seal(t.refreshToken, context(key, 'refresh')) : null,
      accessExpiresAt: new Date(now + t.expiresIn * 1000),
      refreshExpiresAt: t.refreshExpiresIn ? new Date(now + t.refreshExpiresIn * 1000) : null,
      refreshAt: new Date(now + (t.expiresIn - ahead) * 1000),
      scopes: t.scopes,
    };
  }

  private state(row: UserGrantRow): GrantState {
    const now = Date.now();
    const active = row.status === 'active';
    return {
      row,
      fresh: active && row.access_sealed !== null && row.refresh_at !== null && row.refresh_at.getTime() > now,
      usable: active && row.access_sealed !== null && row.access_expires_at !== null && row.access_expires_at.getTime() > now + USABLE_MARGIN_SECONDS * 1000,
      // An ended grant, or one that cannot be refreshed at all, "backs off" for good.
      backing_off: !active || row.refresh_sealed === null || (row.next_attempt_at !== null && row.next_attempt_at.getTime() > now),
      leased: row.minting_until !== null && row.minting_until.getTime() > now,
    };
  }

  private openAccess(key: GrantKey, sealed: Buffer): string {
    return this.sealer.open(sealed, context(key, 'access'));
  }
}

function statusWords(status: GrantStatus): string {
  return status === 'revoked' ? 'the user revoked the authorization in Lark' : 'the authorization needs renewing';
}
