import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

/** The audit action of a purge; also how a purge is known to have happened since the uninstall. */
export const PURGE_ACTION = 'uninstall_data_purged';

/**
 * Deletes finished sync runs created more than `days` ago, keeping each (tenant, module)'s latest
 * run whatever its age, so the API still shows how a connector last ended. Queued and running runs
 * are never touched. Returns the number deleted.
 */
export async function pruneSyncRuns(db: Kysely<Database>, days: number): Promise<number> {
  const res = await sql`
    delete from sync_runs r
     where r.created_at < now() - make_interval(days => ${days})
       and r.status in ('succeeded', 'failed', 'cancelled')
       and r.id <> (select max(l.id) from sync_runs l where l.tenant_key = r.tenant_key and l.module = r.module)`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/**
 * Deletes the seen-key pages of runs that are no longer queued or running: a run that ended, was
 * cancelled between slices, or was pruned. No deletion sweep can use them any more.
 */
export async function dropFinishedSeenPages(db: Kysely<Database>): Promise<number> {
  const res = await sql`
    delete from sync_seen_pages p
     where not exists (select 1 from sync_runs r where r.id = p.run_id and r.status in ('queued', 'running'))`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

export interface TenantPurge {
  tenantKey: string;
  rows: Record<string, number>;
  tokens: number;
}

/**
 * For each tenant uninstalled more than `days` ago and not purged since: deletes its synced rows
 * (every stream table), its sync checkpoints (so a reinstall starts with a full read rather than
 * resuming past data that is gone) and its tokens, and writes an audit row saying what went, in
 * one transaction that re-checks the tenant under its row lock (a reinstall meanwhile wins).
 * Connector settings and the audit trail stay.
 */
export async function purgeUninstalledTenants(
  db: Kysely<Database>,
  days: number,
  /** every stream table (the module registry's catalog) */
  streams: readonly string[],
): Promise<TenantPurge[]> {
  const due = await sql<{ tenant_key: string }>`
    select t.tenant_key from tenants t
     where t.status = 'uninstalled'
       and t.uninstalled_at < now() - make_interval(days => ${days})
       and not exists (
         select 1 from tenant_audit a
          where a.tenant_key = t.tenant_key and a.action = ${PURGE_ACTION} and a.created_at >= t.uninstalled_at)
     order by t.uninstalled_at`.execute(db);
  const purged: TenantPurge[] = [];
  for (const { tenant_key: tenantKey } of due.rows) {
    const done = await db.transaction().execute(async (trx) => {
      const still = await sql<{ ok: boolean }>`
        select true as ok from tenants
         where tenant_key = ${tenantKey} and status = 'uninstalled'
           and uninstalled_at < now() - make_interval(days => ${days})
         for update`.execute(trx);
      if (still.rows.length === 0) return undefined;
      const rows: Record<string, number> = {};
      // Table names come from the modules' declarations (constants), never from input.
      for (const stream of streams) {
        const res = await sql`delete from ${sql.table(stream)} where tenant_key = ${tenantKey}`.execute(trx);
        rows[stream] = Number(res.numAffectedRows ?? 0);
      }
      await trx.deleteFrom('stream_states').where('tenant_key', '=', tenantKey).execute();
      // Knowledge-base sinks hold the tenant's API keys for them: they go with the data.
      await trx.deleteFrom('sink_documents').where('tenant_key', '=', tenantKey).execute();
      await trx.deleteFrom('sinks').where('tenant_key', '=', tenantKey).execute();
      // Normally gone at the uninstall already (app_uninstalled); this catches tenants uninstalled
      // before that was so. Lark dropped them with the install; no job may retry them.
      await trx.deleteFrom('lark_subscriptions').where('tenant_key', '=', tenantKey).execute();
      const tokens = await trx.deleteFrom('access_tokens').where('tenant_key', '=', tenantKey).where('kind', '=', 'tenant').executeTakeFirst();
      const purge: TenantPurge = { tenantKey, rows, tokens: Number(tokens.numDeletedRows) };
      await trx
        .insertInto('tenant_audit')
        .values({ tenant_key: tenantKey, action: PURGE_ACTION, detail: JSON.stringify({ afterDays: days, rows, tokens: purge.tokens }), event_id: null })
        .execute();
      return purge;
    });
    if (done) purged.push(done);
  }
  return purged;
}
