import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { emitWebhookEvent } from '../webhooks/emit.js';
import type { GrantStatus, UserGrantRow } from './grants.table.js';

export interface GrantKey {
  appId: string;
  tenantKey: string;
  openId: string;
}

const keyOf = (k: GrantKey) => ({ app_id: k.appId, tenant_key: k.tenantKey, open_id: k.openId });

export async function findGrant(db: Kysely<Database>, key: GrantKey): Promise<UserGrantRow | undefined> {
  return db
    .selectFrom('user_grants')
    .selectAll()
    .where('app_id', '=', key.appId)
    .where('tenant_key', '=', key.tenantKey)
    .where('open_id', '=', key.openId)
    .executeTakeFirst();
}

export async function listGrants(db: Kysely<Database>, tenantKey: string): Promise<UserGrantRow[]> {
  return db.selectFrom('user_grants').selectAll().where('tenant_key', '=', tenantKey).orderBy('authorized_at', 'desc').execute();
}

export interface SealedTokens {
  access: Buffer;
  refresh: Buffer | null;
  accessExpiresAt: Date;
  refreshExpiresAt: Date | null;
  refreshAt: Date;
  scopes: string[];
}

/** A sign-in's grant: new tokens, active again, whatever it was before (the user authorized anew). */
export async function storeSignIn(
  db: Kysely<Database>,
  key: GrantKey,
  who: { unionId: string | null; userId: string | null; name: string | null },
  t: SealedTokens,
): Promise<UserGrantRow> {
  const values = {
    ...keyOf(key),
    union_id: who.unionId,
    user_id: who.userId,
    name: who.name,
    scopes: t.scopes,
    access_sealed: t.access,
    refresh_sealed: t.refresh,
    access_expires_at: t.accessExpiresAt,
    refresh_expires_at: t.refreshExpiresAt,
    refresh_at: t.refreshAt,
    status: 'active' as GrantStatus,
    status_reason: null,
  };
  return db
    .insertInto('user_grants')
    .values(values)
    .onConflict((oc) =>
      oc.columns(['app_id', 'tenant_key', 'open_id']).doUpdateSet({
        ...values,
        status_at: sql<Date>`now()`,
        authorized_at: sql<Date>`now()`,
        mint_lease: null,
        minting_until: null,
        failures: 0,
        next_attempt_at: null,
        last_error_class: null,
        last_error_code: null,
        last_error_at: null,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** A refresh that failed for now: the claim ends, the next try waits `retryAfterMs`. */
export async function recordRefreshFailure(
  db: Kysely<Database>,
  key: GrantKey,
  lease: string,
  failure: { errorClass: string; code: string; retryAfterMs: number },
): Promise<void> {
  await sql`
    update user_grants set mint_lease = null, minting_until = null, failures = failures + 1,
           next_attempt_at = clock_timestamp() + make_interval(secs => ${failure.retryAfterMs / 1000}),
           last_error_class = ${failure.errorClass}, last_error_code = ${failure.code}, last_error_at = now()
     where app_id = ${key.appId} and tenant_key = ${key.tenantKey} and open_id = ${key.openId} and mint_lease = ${lease}::uuid`.execute(db);
}

/**
 * The grant can no longer be refreshed (the refresh token is expired, revoked or was used): the
 * user must sign in again. Its tokens are dropped (they cannot come back to life), and nothing
 * retries it. `lease` limits it to the refresh that found out; without it (a revocation event or
 * an operator), any state but `revoked` (which only a new sign-in ends) changes.
 */
export async function endGrant(
  db: Kysely<Database>,
  key: GrantKey,
  status: Exclude<GrantStatus, 'active'>,
  reason: string,
  opts: { lease?: string; errorClass?: string; code?: string } = {},
): Promise<boolean> {
  // One transaction with the webhook outbox: grant.needs_reauth commits with the change or not at all.
  return db.transaction().execute(async (trx) => {
    const res = await sql<{ previous: GrantStatus; name: string | null }>`
      with before as (
        select status from user_grants
         where app_id = ${key.appId} and tenant_key = ${key.tenantKey} and open_id = ${key.openId} for update)
      update user_grants set status = ${status}, status_reason = ${reason}, status_at = now(),
             access_sealed = null, refresh_sealed = null, mint_lease = null, minting_until = null,
             last_error_class = coalesce(${opts.errorClass ?? null}, last_error_class),
             last_error_code = coalesce(${opts.code ?? null}, last_error_code),
             last_error_at = case when ${opts.errorClass ?? null}::text is null then last_error_at else now() end
        from before
       where app_id = ${key.appId} and tenant_key = ${key.tenantKey} and open_id = ${key.openId}
         and (${opts.lease ?? null}::uuid is null or mint_lease = ${opts.lease ?? null}::uuid)
         and user_grants.status <> 'revoked'
      returning before.status as previous, user_grants.name`.execute(trx);
    const ended = res.rows[0];
    if (ended && status === 'needs_reauth' && ended.previous !== 'needs_reauth') {
      await emitWebhookEvent(trx, { type: 'grant.needs_reauth', tenantKey: key.tenantKey, data: { appId: key.appId, openId: key.openId, name: ended.name, reason, errorClass: opts.errorClass ?? null } });
    }
    return ended !== undefined;
  });
}

export async function deleteGrant(db: Kysely<Database>, tenantKey: string, openId: string): Promise<number> {
  const res = await db.deleteFrom('user_grants').where('tenant_key', '=', tenantKey).where('open_id', '=', openId).executeTakeFirst();
  return Number(res.numDeletedRows);
}

/** Active grants whose refresh token nears its end (and so are due): the cron keeps them alive. */
export async function dueGrants(db: Kysely<Database>, limit: number, keepAliveSeconds: number): Promise<GrantKey[]> {
  const rows = await db
    .selectFrom('user_grants')
    .select(['app_id', 'tenant_key', 'open_id'])
    .where('status', '=', 'active')
    .where('refresh_sealed', 'is not', null)
    .where('refresh_at', '<=', sql<Date>`now()`)
    .where('refresh_expires_at', '<', sql<Date>`now() + make_interval(secs => ${keepAliveSeconds})`)
    .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', sql<Date>`now()`)]))
    .where((eb) => eb.or([eb('minting_until', 'is', null), eb('minting_until', '<=', sql<Date>`now()`)]))
    .orderBy('refresh_at')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ appId: r.app_id, tenantKey: r.tenant_key, openId: r.open_id }));
}

export async function countGrantsByStatus(db: Kysely<Database>): Promise<Record<GrantStatus, number>> {
  const rows = await db.selectFrom('user_grants').select(['status', sql<number>`count(*)::int`.as('n')]).groupBy('status').execute();
  const out: Record<GrantStatus, number> = { active: 0, needs_reauth: 0, revoked: 0 };
  for (const r of rows) out[r.status] = r.n;
  return out;
}
