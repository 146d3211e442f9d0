import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import type { WebhookEventType } from './event-types.js';
import type { DeliveryStatus, WebhookAttemptRow, WebhookDeliveryRow, WebhookRow } from './webhooks.table.js';

export async function nextWebhookId(trx: Transaction<Database>): Promise<string> {
  const res = await sql<{ id: string }>`select nextval(pg_get_serial_sequence('webhooks', 'id'))::text as id`.execute(trx);
  return res.rows[0]!.id;
}

export async function insertWebhook(
  trx: Transaction<Database>,
  w: { id: string; url: string; description: string | null; eventTypes: WebhookEventType[]; tenantKeys: string[] | null; secretSealed: Buffer },
): Promise<WebhookRow> {
  return trx
    .insertInto('webhooks')
    .values({
      id: w.id,
      url: w.url,
      description: w.description,
      event_types: sql<WebhookEventType[]>`${w.eventTypes}::text[]`,
      tenant_keys: w.tenantKeys === null ? null : sql<string[]>`${w.tenantKeys}::text[]`,
      secret_sealed: w.secretSealed,
      disabled_reason: null,
      disabled_at: null,
      previous_secret_sealed: null,
      previous_secret_expires_at: null,
      failing_since: null,
      last_failure_at: null,
      last_success_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findWebhook(db: Kysely<Database>, id: string): Promise<WebhookRow | undefined> {
  return db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listWebhooks(db: Kysely<Database>, opts: { limit: number; after?: string }): Promise<WebhookRow[]> {
  return db
    .selectFrom('webhooks')
    .selectAll()
    .$if(opts.after !== undefined, (q) => q.where('id', '>', opts.after!))
    .orderBy('id')
    .limit(opts.limit)
    .execute();
}

export interface WebhookChanges {
  url?: string;
  description?: string | null;
  eventTypes?: WebhookEventType[];
  tenantKeys?: string[] | null;
  /** true: enabled again (failing history cleared); false: disabled by the operator */
  enabled?: boolean;
}

export async function updateWebhook(db: Kysely<Database>, id: string, c: WebhookChanges): Promise<WebhookRow | undefined> {
  return db
    .updateTable('webhooks')
    .set({
      ...(c.url !== undefined ? { url: c.url } : {}),
      ...(c.description !== undefined ? { description: c.description } : {}),
      ...(c.eventTypes !== undefined ? { event_types: sql<WebhookEventType[]>`${c.eventTypes}::text[]` } : {}),
      ...(c.tenantKeys !== undefined ? { tenant_keys: c.tenantKeys === null ? null : sql<string[]>`${c.tenantKeys}::text[]` } : {}),
      ...(c.enabled === true
        ? { status: 'enabled' as const, disabled_reason: null, disabled_at: null, failing_since: null }
        : c.enabled === false
          ? {
              status: 'disabled' as const,
              disabled_reason: sql<string>`case when status = 'disabled' then disabled_reason else 'disabled through the API' end`,
              disabled_at: sql<Date>`case when status = 'disabled' then disabled_at else now() end`,
            }
          : {}),
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteWebhook(db: Kysely<Database>, id: string): Promise<boolean> {
  const res = await db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}

export async function listDeliveries(
  db: Kysely<Database>,
  webhookId: string,
  opts: { limit: number; before?: string; status?: DeliveryStatus; tenantKey?: string },
): Promise<{ deliveries: WebhookDeliveryRow[]; attempts: Map<string, WebhookAttemptRow[]> }> {
  const deliveries = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('webhook_id', '=', webhookId)
    .$if(opts.before !== undefined, (q) => q.where('id', '<', opts.before!))
    .$if(opts.status !== undefined, (q) => q.where('status', '=', opts.status!))
    .$if(opts.tenantKey !== undefined, (q) => q.where('tenant_key', '=', opts.tenantKey!))
    .orderBy('id', 'desc')
    .limit(opts.limit)
    .execute();
  const attempts = new Map<string, WebhookAttemptRow[]>();
  if (deliveries.length > 0) {
    const rows = await db
      .selectFrom('webhook_attempts')
      .selectAll()
      .where(
        'delivery_id',
        'in',
        deliveries.map((d) => d.id),
      )
      .orderBy('id')
      .execute();
    for (const r of rows) (attempts.get(r.delivery_id) ?? attempts.set(r.delivery_id, []).get(r.delivery_id)!).push(r);
  }
  return { deliveries, attempts };
}

export async function findDelivery(db: Kysely<Database>, webhookId: string, deliveryId: string): Promise<WebhookDeliveryRow | undefined> {
  return db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId).where('id', '=', deliveryId).executeTakeFirst();
}

/**
 * A delivery to send again, under the same webhook-id with the same body: pending at once, with a
 * fresh retry window. Coalesced deliveries were sent as part of another and are left alone.
 */
export async function markForResend(db: Kysely<Database>, webhookId: string, deliveryId: string, now: Date): Promise<WebhookDeliveryRow | undefined> {
  return db
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', next_attempt_at: null, retry_from: now })
    .where('webhook_id', '=', webhookId)
    .where('id', '=', deliveryId)
    .where('status', '!=', 'coalesced')
    .returningAll()
    .executeTakeFirst();
}

/** Finished deliveries older than `days`, then the events no delivery refers to any more. */
export async function pruneDeliveries(db: Kysely<Database>, days: number): Promise<number> {
  const gone = await db
    .deleteFrom('webhook_deliveries')
    .where('status', 'in', ['delivered', 'failed', 'coalesced'])
    .where('created_at', '<', sql<Date>`now() - make_interval(days => ${days})`)
    .executeTakeFirst();
  await sql`
    delete from webhook_events e
     where e.occurred_at < now() - make_interval(days => ${days})
       and not exists (select 1 from webhook_deliveries d where d.event_id = e.id)`.execute(db);
  return Number(gone.numDeletedRows);
}
