import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

/** The graphile-worker task that makes and undoes a tenant's subscribe calls (subscriptions.task.ts). */
export const SUBSCRIPTIONS_TASK = 'manage_subscriptions';

/**
 * Why a tenant's subscriptions are looked at:
 * - `configured`: a connector was created, enabled, reconfigured or disabled; what Lark refused
 *   before is tried again (the person configuring may have just granted the right);
 * - `installed`: the company installed the app (again): every subscription is made again, since a
 *   reinstalled app cannot count on what it had before;
 * - `documents`: the docs module's documents changed (a run finished);
 * - `due`: retries whose time has come (the minute sweep), or the rest of a job's work.
 */
export type SubscriptionReason = 'configured' | 'installed' | 'documents' | 'due';

/**
 * Queues the tenant's job, in the caller's transaction when given one (a connector change and its
 * job commit together). One job per tenant (job key, queue of its own): calls again before it ran
 * make one job; a job added while one runs waits for it. Flags live on the rows, not in the
 * payload, so a replaced job loses nothing.
 */
export async function queueSubscriptionJob(db: Kysely<Database>, tenantKey: string, reason: SubscriptionReason, runAt?: Date): Promise<void> {
  if (reason === 'installed') {
    // A first install has no connectors yet: nothing to subscribe, no job (their save queues one).
    const any = await sql<{ n: number }>`
      select (exists (select 1 from connectors where tenant_key = ${tenantKey})
              or exists (select 1 from lark_subscriptions where tenant_key = ${tenantKey}))::int as n`.execute(db);
    if (!any.rows[0]?.n) return;
    await sql`update lark_subscriptions set status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
               where tenant_key = ${tenantKey} and wanted`.execute(db);
  } else if (reason === 'configured') {
    await sql`update lark_subscriptions set status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
               where tenant_key = ${tenantKey} and wanted and status = 'refused'`.execute(db);
  }
  // A later run_at never pushes back a job already due (preserve_run_at); an immediate one replaces.
  await sql`select graphile_worker.add_job(
    ${SUBSCRIPTIONS_TASK},
    json_build_object('tenantKey', ${tenantKey}::text),
    queue_name => ${'subscriptions:' + tenantKey},
    run_at => ${runAt ?? null}::timestamptz,
    max_attempts => 10,
    job_key => ${'subscriptions:' + tenantKey},
    job_key_mode => ${runAt ? 'preserve_run_at' : 'replace'}
  )`.execute(db);
}

/**
 * The tenant uninstalled the app: its subscription rows go, and so does its queued job. Lark
 * drops an app's subscriptions with its install (the notes do not say so outright: unconfirmed),
 * and the tenant's token is dead, so nothing could be undone with it anyway; a reinstall queues
 * `installed`, whose plan makes the rows again from the connectors. A job already running finds
 * the tenant not active and stops (SubscriptionManager.run). Safe to run again.
 */
export async function forgetTenantSubscriptions(db: Kysely<Database>, tenantKey: string): Promise<number> {
  const res = await db.deleteFrom('lark_subscriptions').where('tenant_key', '=', tenantKey).executeTakeFirst();
  // remove_job leaves a job that is running (locked) alone; that one stops by itself.
  await sql`select graphile_worker.remove_job(${'subscriptions:' + tenantKey})`.execute(db);
  return Number(res.numDeletedRows);
}

/** Tenants with subscription work due and no job due for it (the minute sweep queues one each, or brings one forward). */
export async function queueDueSubscriptionJobs(db: Kysely<Database>): Promise<number> {
  const due = await sql<{ tenant_key: string }>`
    select distinct s.tenant_key from lark_subscriptions s
      join tenants t on t.tenant_key = s.tenant_key and t.status = 'active'
     where (s.status <> 'subscribed' or not s.wanted) and s.next_attempt_at <= now()
       -- A job already due (or running) will see them; one waiting for a later retry is brought forward.
       and not exists (select 1 from graphile_worker.jobs j where j.key = 'subscriptions:' || s.tenant_key
                          and ((j.run_at <= now() and j.attempts < j.max_attempts) or j.locked_at is not null))
     limit 1000`.execute(db);
  for (const r of due.rows) await queueSubscriptionJob(db, r.tenant_key, 'due');
  return due.rows.length;
}
