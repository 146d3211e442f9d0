import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { SealError, type Sealer } from '../crypto/sealer.js';
import type { Database } from '../db/database.js';
import type { IssuedToken } from '../lark/auth-api.js';
import type { Metrics } from '../metrics/metrics.js';
import { TenantNotActiveError } from '../tenants/tenant-errors.js';
import { backoffSeconds, mintErrorClass, mintErrorCode, TokenUnavailableError, type MintBackoff, type MintErrorClass } from './mint-errors.js';
import { phaseFraction, planRefresh, shiftOf, type RefreshWindow } from './refresh-plan.js';
import type { TokenRows } from './token-store.js';
import {
  claimMint,
  findFreshToken,
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

export const tokenHash = (value: string) => createHash('sha256').update(value).digest('hex');

/**
 * A stored token is handed out while a refresh fails only while it has at least this long to live
 * (stale-while-valid): enough for the call it is handed to, with its retries.
 */
const USABLE_MARGIN_SECONDS = 60;

/**
 * How long a process hands out a token it read without reading its row again (AccessTokenRows
 * `held`), at most: what is done to the row elsewhere (an uninstall deletes it, another process
 * drops a token Lark rejected) is seen within this long.
 */
const HOLD_MAX_MS = 60_000;

export interface AccessTokenRowsOptions {
  refreshWindow: RefreshWindow;
  clock: Clock;
  /** How long a claim to mint lasts (TokenOptions.mintLeaseMs). */
  mintLeaseMs: number;
  backoff: MintBackoff;
}

/**
 * App and tenant access tokens in `access_tokens`, as the token store sees them: sealed per key,
 * their refresh time planned (refresh-plan.ts), failures counted with a backoff (mint-errors.ts).
 */
export class AccessTokenRows implements TokenRows<TokenKey, string, IssuedToken, MintState> {
  /**
   * Per key: a token this process read fresh, handed out without a read until its refresh time
   * (at most HOLD_MAX_MS). Every Lark call asks for its token: at 200 change events a second that
   * read (and the opening of its seal) was a statement per call. Tokens are still minted once across
   * processes through their rows; another process's refresh leaves this one's token valid (Lark
   * keeps an old token valid until it expires, and refresh points lie at least 7 minutes before
   * that), and a token Lark rejects is dropped here too (invalidate) before the retry reads anew.
   */
  private readonly held = new Map<string, { token: string; until: number }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: AccessTokenRowsOptions,
  ) {}

  id(key: TokenKey): string {
    return tokenKeyId(key);
  }

  async readFresh(key: TokenKey, opts: { reread?: boolean } = {}): Promise<string | undefined> {
    const id = tokenKeyId(key);
    const now = this.options.clock.now().getTime();
    const held = this.held.get(id);
    if (held && now < held.until && !opts.reread) return held.token;
    this.held.delete(id);
    const row = await findFreshToken(this.db, key, this.options.clock.sql());
    const token = row?.token_sealed ? this.openSealed(key, row.token_sealed) : undefined;
    if (token !== undefined && row?.refresh_at) this.held.set(id, { token, until: Math.min(row.refresh_at.getTime(), now + HOLD_MAX_MS) });
    return token;
  }

  claim(key: TokenKey, lease: string): Promise<MintState | undefined> {
    return claimMint(this.db, key, lease, this.options.mintLeaseMs, this.options.clock.sql(), USABLE_MARGIN_SECONDS);
  }

  read(key: TokenKey): Promise<MintState | undefined> {
    return readMintState(this.db, key, this.options.clock.sql(), USABLE_MARGIN_SECONDS);
  }

  open(key: TokenKey, row: Pick<MintState, 'token_sealed'>): string | undefined {
    return row.token_sealed ? this.openSealed(key, row.token_sealed) : undefined;
  }

  async discard(key: TokenKey, row: MintState): Promise<void> {
    this.forget(key);
    if (row.token_hash) await invalidateToken(this.db, key, row.token_hash);
  }

  /**
   * Stores a minted token and ends the claim. A tenant token only while the tenant is still
   * served by this app: the tenant row is locked (shared) for the check, so an uninstall commits
   * either before (and this refuses) or after (and deletes what this stored).
   */
  async store(key: TokenKey, minted: IssuedToken, claimed: MintState, lease: string): Promise<string> {
    const now = this.options.clock.now().getTime();
    const refreshAfterSeconds = await this.db.transaction().execute(async (trx) => {
      if (key.kind === 'tenant') await assertTenantServed(trx, key, true);
      return this.write(trx, key, minted, shiftOf(claimed, this.options.refreshWindow), lease);
    });
    // Stored: held from now on, as a read of the row would have it.
    this.held.set(tokenKeyId(key), { token: minted.token, until: now + Math.min(refreshAfterSeconds * 1000, HOLD_MAX_MS) });
    return minted.token;
  }

  /**
   * Writes a token with its planned refresh time, clearing failures, and ends the claim `lease`
   * (null: none was taken). `previousShiftSeconds`: how the token it replaces was planned.
   * Returns the seconds until its refresh time.
   */
  async write(db: Kysely<Database>, key: TokenKey, minted: IssuedToken, previousShiftSeconds: number | null, lease: string | null): Promise<number> {
    this.forget(key);
    const plan = planRefresh({
      key: tokenKeyId(key),
      nowMs: this.options.clock.now().getTime(),
      expireSeconds: minted.expire,
      previousShiftSeconds,
      window: this.options.refreshWindow,
    });
    await storeMintedToken(
      db,
      key,
      {
        sealed: this.sealer.seal(minted.token, tokenContext(key)),
        hash: tokenHash(minted.token),
        expireSeconds: minted.expire,
        refreshAfterSeconds: plan.refreshAfterSeconds,
      },
      this.options.clock.sql(),
      lease,
    );
    this.metrics.tokenMints.inc({ kind: key.kind, outcome: 'success' });
    return plan.refreshAfterSeconds;
  }

  /**
   * Records a failed mint (count, class, backoff) and ends the claim in one transaction. A tenant
   * that is gone is not a failure of its token, just the end of it: nothing is counted, and its
   * stored token is not handed out.
   */
  async recordFailure(key: TokenKey, err: unknown, lease: string): Promise<{ serveStale: boolean }> {
    if (err instanceof TenantNotActiveError) {
      await releaseMint(this.db, key, lease).catch(() => undefined);
      return { serveStale: false };
    }
    const cls = mintErrorClass(err);
    if (cls !== 'app_ticket') this.metrics.tokenMints.inc({ kind: key.kind, outcome: 'failure' });
    const spread = phaseFraction(tokenKeyId(key), 'backoff');
    try {
      await recordMintFailure(
        this.db,
        key,
        { code: mintErrorCode(err), cls, message: (err as Error).message },
        this.options.clock.sql(),
        (failures) => backoffSeconds(failures, cls, this.options.backoff, spread),
        lease,
      );
    } catch {
      // The database is failing too: at worst the claim lapses on its own.
      await releaseMint(this.db, key, lease).catch(() => undefined);
    }
    return { serveStale: true };
  }

  unavailable(key: TokenKey, row: MintState): Error {
    return new TokenUnavailableError(
      key.kind === 'app' ? `the app access token of ${key.appId}` : `the tenant access token of ${key.tenantKey}`,
      row.failures,
      (row.last_error_class ?? 'internal') as MintErrorClass,
      row.last_error_code ?? 'unknown',
      row.next_attempt_at ?? new Date(),
    );
  }

  /** Stops handing out a token this process holds for `key` (its row is going). */
  forget(key: TokenKey): void {
    this.held.delete(tokenKeyId(key));
  }

  /** Drops the token only if it is still the one Lark rejected, so a fresher one minted meanwhile survives. */
  invalidate(key: TokenKey, token: string): Promise<boolean> {
    this.forget(key);
    return invalidateToken(this.db, key, tokenHash(token));
  }

  private openSealed(key: TokenKey, sealed: Buffer): string | undefined {
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
}

/** The tenant may have uninstalled (and been purged), or moved to another app, since the caller looked. */
export async function assertTenantServed(db: Kysely<Database>, key: TokenKey, lock: boolean): Promise<void> {
  let q = db.selectFrom('tenants').select(['status', 'app_id']).where('tenant_key', '=', key.tenantKey);
  if (lock) q = q.forShare();
  const tenant = await q.executeTakeFirst();
  if (!tenant || tenant.status === 'uninstalled') throw new TenantNotActiveError(key.tenantKey, 'has uninstalled the app');
  if (tenant.app_id !== key.appId) {
    throw new TenantNotActiveError(key.tenantKey, `is now served by app ${tenant.app_id}, not ${key.appId}`);
  }
}
