import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/database.js';
import type { AccessTokenRow, TokenKind } from './tokens.table.js';

export interface TokenKey {
  kind: TokenKind;
  appId: string;
  /** '' for app tokens */
  tenantKey: string;
}

export const tokenKeyId = (k: TokenKey) => `${k.kind}:${k.appId}:${k.tenantKey}`;
export const tokenContext = (k: TokenKey) => `access_tokens.token:${tokenKeyId(k)}`;

/** The stored token if it is still before its refresh time (`now`: the clock's SQL time, the database's in production). */
export async function findFreshToken(
  db: Kysely<Database>,
  k: TokenKey,
  now: RawBuilder<Date>,
): Promise<Pick<AccessTokenRow, 'token_sealed' | 'refresh_at'> | undefined> {
  return db
    .selectFrom('access_tokens')
    .select(['token_sealed', 'refresh_at'])
    .where('app_id', '=', k.appId)
    .where('kind', '=', k.kind)
    .where('tenant_key', '=', k.tenantKey)
    .where('token_sealed', 'is not', null)
    .where('refresh_at', '>', now)
    .executeTakeFirst();
}

/** What a mint needs to know of the stored row: whether it is still fresh, and how it was planned. */
export async function findMintState(
  db: Kysely<Database>,
  k: TokenKey,
  now: RawBuilder<Date>,
): Promise<{ token_sealed: Buffer | null; refresh_at: Date | null; expires_at: Date | null; fresh: boolean } | undefined> {
  return db
    .selectFrom('access_tokens')
    .select(['token_sealed', 'refresh_at', 'expires_at'])
    .select(sql<boolean>`token_sealed is not null and refresh_at is not null and refresh_at > ${now}`.as('fresh'))
    .where('app_id', '=', k.appId)
    .where('kind', '=', k.kind)
    .where('tenant_key', '=', k.tenantKey)
    .executeTakeFirst();
}

/** A token row as a mint sees it: what it holds and what may happen next. */
export interface MintState {
  token_sealed: Buffer | null;
  token_hash: string | null;
  refresh_at: Date | null;
  expires_at: Date | null;
  /** holds a token before its refresh time: nothing to mint */
  fresh: boolean;
  /** holds a token valid for at least the margin: usable while a refresh fails */
  usable: boolean;
  /** a failed mint's backoff has not passed */
  backing_off: boolean;
  /** another claim to mint it is live */
  leased: boolean;
  failures: number;
  next_attempt_at: Date | null;
  last_error_code: string | null;
  last_error_class: string | null;
}

/**
 * The state columns of MintState. Token times are judged by the token clock (`now`); leases by
 * the database's real time, since they are about processes being alive, not about token time.
 */
const mintStateColumns = (now: RawBuilder<Date>, usableMarginSeconds: number) => sql<MintState>`
  token_sealed, token_hash, refresh_at, expires_at,
  (token_sealed is not null and refresh_at is not null and refresh_at > ${now}) as fresh,
  (token_sealed is not null and expires_at is not null and expires_at > ${now} + make_interval(secs => ${usableMarginSeconds})) as usable,
  (next_attempt_at is not null and next_attempt_at > ${now}) as backing_off,
  (minting_until is not null and minting_until > clock_timestamp()) as leased,
  failures, next_attempt_at, last_error_code, last_error_class`;

export async function readMintState(
  db: Kysely<Database>,
  k: TokenKey,
  now: RawBuilder<Date>,
  usableMarginSeconds: number,
): Promise<MintState | undefined> {
  const res = await sql<MintState>`
    select ${mintStateColumns(now, usableMarginSeconds)} from access_tokens
     where app_id = ${k.appId} and kind = ${k.kind} and tenant_key = ${k.tenantKey}`.execute(db);
  return res.rows[0];
}

/**
 * Claims the right to mint this token for `leaseMs`, in one short statement: only when no other
 * claim is live, the stored token is not fresh and no backoff is running. Answers the row as
 * claimed, or undefined when not claimed (readMintState says why). Nothing is held open while the
 * claimant calls Lark; a claimant that dies simply lets its lease lapse.
 */
export async function claimMint(
  db: Kysely<Database>,
  k: TokenKey,
  lease: string,
  leaseMs: number,
  now: RawBuilder<Date>,
  usableMarginSeconds: number,
): Promise<MintState | undefined> {
  const until = sql`clock_timestamp() + make_interval(secs => ${leaseMs / 1000})`;
  const res = await sql<MintState>`
    insert into access_tokens as t (app_id, kind, tenant_key, mint_lease, minting_until)
    values (${k.appId}, ${k.kind}, ${k.tenantKey}, ${lease}::uuid, ${until})
    on conflict (app_id, kind, tenant_key) do update
       set mint_lease = excluded.mint_lease, minting_until = excluded.minting_until
     where (t.minting_until is null or t.minting_until <= clock_timestamp())
       and not (t.token_sealed is not null and t.refresh_at is not null and t.refresh_at > ${now})
       and (t.next_attempt_at is null or t.next_attempt_at <= ${now})
    returning ${mintStateColumns(now, usableMarginSeconds)}`.execute(db);
  return res.rows[0];
}

/** Gives a claim back (only if it is still this one). */
export async function releaseMint(db: Kysely<Database>, k: TokenKey, lease: string): Promise<void> {
  await db
    .updateTable('access_tokens')
    .set({ mint_lease: null, minting_until: null })
    .where('app_id', '=', k.appId)
    .where('kind', '=', k.kind)
    .where('tenant_key', '=', k.tenantKey)
    .where('mint_lease', '=', lease)
    .execute();
}

/** The lease columns after a mint ends: cleared if the claim is still `lease`, else left to its holder. */
const endLease = (lease: string | null) =>
  lease === null
    ? {}
    : {
        mint_lease: sql<string | null>`case when access_tokens.mint_lease = ${lease}::uuid then null else access_tokens.mint_lease end`,
        minting_until: sql<Date | null>`case when access_tokens.mint_lease = ${lease}::uuid then null else access_tokens.minting_until end`,
      };

/** Stores a minted token, clears the failure count and backoff, and ends the claim `lease` (null: none was taken). */
export async function storeMintedToken(
  db: Kysely<Database>,
  k: TokenKey,
  v: { sealed: Buffer; hash: string; expireSeconds: number; refreshAfterSeconds: number },
  now: RawBuilder<Date>,
  lease: string | null,
): Promise<void> {
  const expires = sql<Date>`${now} + make_interval(secs => ${v.expireSeconds})`;
  const refresh = sql<Date>`${now} + make_interval(secs => ${v.refreshAfterSeconds})`;
  await db
    .insertInto('access_tokens')
    .values({
      app_id: k.appId,
      kind: k.kind,
      tenant_key: k.tenantKey,
      token_sealed: v.sealed,
      token_hash: v.hash,
      expires_at: expires,
      refresh_at: refresh,
      minted_at: now,
      mint_count: 1,
      last_error_code: null,
      last_error_message: null,
      last_error_at: null,
    })
    .onConflict((oc) =>
      oc.columns(['app_id', 'kind', 'tenant_key']).doUpdateSet({
        token_sealed: v.sealed,
        token_hash: v.hash,
        expires_at: expires,
        refresh_at: refresh,
        minted_at: now,
        mint_count: sql<number>`access_tokens.mint_count + 1`,
        last_error_code: null,
        last_error_message: null,
        last_error_at: null,
        last_error_class: null,
        failures: 0,
        next_attempt_at: null,
        ...endLease(lease),
      }),
    )
    .execute();
}

/**
 * Records a failed mint: counts it, keeps what went wrong, sets the next allowed attempt
 * (`backoff` from the new failure count, or none) and ends the claim, all in one transaction, so
 * no other process sees the claim gone before the backoff is in place.
 */
export async function recordMintFailure(
  db: Kysely<Database>,
  k: TokenKey,
  failure: { code: string; cls: string; message: string },
  now: RawBuilder<Date>,
  backoff: (failures: number) => number | null,
  lease: string | null,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('access_tokens')
      .values({
        app_id: k.appId,
        kind: k.kind,
        tenant_key: k.tenantKey,
        last_error_code: failure.code,
        last_error_class: failure.cls,
        last_error_message: failure.message.slice(0, 500),
        last_error_at: now,
        failures: 1,
      })
      .onConflict((oc) =>
        oc.columns(['app_id', 'kind', 'tenant_key']).doUpdateSet({
          last_error_code: failure.code,
          last_error_class: failure.cls,
          last_error_message: failure.message.slice(0, 500),
          last_error_at: now,
          failures: sql<number>`access_tokens.failures + 1`,
          ...endLease(lease),
        }),
      )
      .returning('failures')
      .executeTakeFirstOrThrow();
    const wait = backoff(row.failures);
    await trx
      .updateTable('access_tokens')
      .set({ next_attempt_at: wait === null ? null : sql<Date>`${now} + make_interval(secs => ${wait})` })
      .where('app_id', '=', k.appId)
      .where('kind', '=', k.kind)
      .where('tenant_key', '=', k.tenantKey)
      .execute();
    return row.failures;
  });
}

/** Lifts a backoff (new credentials were stored: they deserve a try at once). */
export async function clearMintBackoff(db: Kysely<Database>, appId: string): Promise<void> {
  await db.updateTable('access_tokens').set({ next_attempt_at: null }).where('app_id', '=', appId).execute();
}

/** Drops the token only if it is still the one that failed, so a fresher token minted meanwhile survives. */
export async function invalidateToken(db: Kysely<Database>, k: TokenKey, hash: string): Promise<boolean> {
  const res = await db
    .updateTable('access_tokens')
    .set({ token_sealed: null, token_hash: null, refresh_at: null })
    .where('app_id', '=', k.appId)
    .where('kind', '=', k.kind)
    .where('tenant_key', '=', k.tenantKey)
    .where('token_hash', '=', hash)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Deletes one app's tokens for a tenant (another app serving it keeps its own). */
export async function deleteTenantTokens(db: Kysely<Database>, tenantKey: string, appId: string): Promise<number> {
  const res = await db
    .deleteFrom('access_tokens')
    .where('kind', '=', 'tenant')
    .where('tenant_key', '=', tenantKey)
    .where('app_id', '=', appId)
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}

export async function findTokenRow(db: Kysely<Database>, k: TokenKey): Promise<AccessTokenRow | undefined> {
  return db
    .selectFrom('access_tokens')
    .selectAll()
    .where('app_id', '=', k.appId)
    .where('kind', '=', k.kind)
    .where('tenant_key', '=', k.tenantKey)
    .executeTakeFirst();
}
