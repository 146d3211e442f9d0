import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
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

/** Serialises minting of one token across all processes until the transaction ends. */
export async function lockTokenKey(trx: Transaction<Database>, k: TokenKey): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${'larksync:' + tokenKeyId(k)}, 0))`.execute(trx);
}

export async function storeMintedToken(
  db: Kysely<Database>,
  k: TokenKey,
  v: { sealed: Buffer; hash: string; expireSeconds: number; refreshAfterSeconds: number },
  now: RawBuilder<Date>,
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
      }),
    )
    .execute();
}

export async function recordMintError(
  db: Kysely<Database>,
  k: TokenKey,
  code: string,
  message: string,
  now: RawBuilder<Date>,
): Promise<void> {
  await db
    .insertInto('access_tokens')
    .values({
      app_id: k.appId,
      kind: k.kind,
      tenant_key: k.tenantKey,
      token_sealed: null,
      token_hash: null,
      expires_at: null,
      refresh_at: null,
      minted_at: null,
      last_error_code: code,
      last_error_message: message.slice(0, 500),
      last_error_at: now,
    })
    .onConflict((oc) =>
      oc.columns(['app_id', 'kind', 'tenant_key']).doUpdateSet({
        last_error_code: code,
        last_error_message: message.slice(0, 500),
        last_error_at: now,
      }),
    )
    .execute();
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

export async function deleteTenantTokens(db: Kysely<Database>, tenantKey: string): Promise<number> {
  const res = await db.deleteFrom('access_tokens').where('kind', '=', 'tenant').where('tenant_key', '=', tenantKey).executeTakeFirst();
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
