import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { LarkEventRow } from './events.table.js';

export const eventContext = (eventId: string) => `lark_events.payload:${eventId}`;

export interface NewStoredEvent {
  eventId: string;
  appId: string | null;
  schemaVersion: 'v1' | 'v2';
  eventType: string;
  tenantKey: string | null;
  payloadSealed: Buffer;
}

/**
 * Stores the event and queues its processing in one transaction, so an acknowledged event is
 * never lost and a redelivery (same event_id) neither stores nor queues anything again.
 */
export async function storeAndEnqueue(db: Kysely<Database>, e: NewStoredEvent, queueName: string): Promise<'stored' | 'duplicate'> {
  return db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('lark_events')
      .values({
        event_id: e.eventId,
        app_id: e.appId,
        schema_version: e.schemaVersion,
        event_type: e.eventType,
        tenant_key: e.tenantKey,
        payload_sealed: e.payloadSealed,
      })
      .onConflict((oc) => oc.column('event_id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return 'duplicate';
    await sql`select graphile_worker.add_job(
      'handle_lark_event',
      json_build_object('id', ${inserted.id}::text),
      queue_name => ${queueName},
      max_attempts => 25
    )`.execute(trx);
    return 'stored';
  });
}

export async function findEvent(db: Kysely<Database>, id: string): Promise<LarkEventRow | undefined> {
  return db.selectFrom('lark_events').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function markEvent(
  db: Kysely<Database>,
  id: string,
  status: 'processed' | 'ignored' | 'failed',
  error: string | null,
): Promise<void> {
  await db
    .updateTable('lark_events')
    .set({
      status,
      last_error: error,
      processed_at: status === 'failed' ? null : sql<Date>`now()`,
      attempts: sql<number>`attempts + 1`,
    })
    .where('id', '=', id)
    .execute();
}

/** Keeps de-duplication well past Lark's ~7 h retry horizon before forgetting an event. */
export async function purgeEventsOlderThan(db: Kysely<Database>, days: number): Promise<number> {
  const res = await db
    .deleteFrom('lark_events')
    .where('received_at', '<', sql<Date>`now() - make_interval(days => ${days})`)
    .where('status', '!=', 'pending')
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}
