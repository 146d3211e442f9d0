import { sql, type Kysely } from 'kysely';
import type pg from 'pg';
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

export interface EventToStore extends NewStoredEvent {
  /** the shard queue whose job handles this event */
  queueName: string;
}

/**
 * One statement: the CTE inserts the rows, then queues one job per shard queue present in the
 * batch, listing that shard's new event ids in id order (so a tenant's events are handled in the
 * order they arrived); the jobs CTE is referenced by the outer select, so it always runs. A job
 * per event cost Postgres three times what storing the event did (graphile-worker's job rows,
 * indexes and queue locks), which made it the ceiling of the endpoint. One statement is atomic without BEGIN/COMMIT, and prepared
 * once per connection. Payloads travel as one binary blob with offsets: a bytea[] parameter would
 * be hex-escaped text, which costs more than the insert on both ends.
 */
const STORE_BATCH = {
  name: 'larksync_store_lark_events_v1',
  text: `
    with input as (
      select i.event_id, i.app_id, i.schema_version, i.event_type, i.tenant_key,
             substring($6::bytea from i.payload_from for i.payload_length) as payload_sealed, i.queue_name, i.ord
        from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::int[], $8::int[], $9::text[])
             with ordinality as i(event_id, app_id, schema_version, event_type, tenant_key, payload_from, payload_length, queue_name, ord)
    ), inserted as (
      insert into lark_events (event_id, app_id, schema_version, event_type, tenant_key, payload_sealed)
      select event_id, app_id, schema_version, event_type, tenant_key, payload_sealed from input order by ord
      on conflict (event_id) do nothing
      returning id, event_id
    ), jobs as (
      select count(*) as n from graphile_worker.add_jobs((
        select array_agg(row('handle_lark_events', json_build_object('ids', g.ids), g.queue_name, null, 25, null, null, null)::graphile_worker.job_spec)
          from (select input.queue_name, json_agg(ins.id::text order by ins.id) as ids
                  from inserted ins join input using (event_id)
                 group by input.queue_name) g))
    )
    select event_id from inserted where (select n from jobs) >= 0`,
};

/** A failed event is retried on its own, in its tenant's queue, so it does not hold up its shard. */
export async function enqueueRetry(db: Kysely<Database>, id: string, queueName: string, delaySeconds: number): Promise<void> {
  await sql`select graphile_worker.add_job(
    'handle_lark_event',
    json_build_object('id', ${id}::text),
    queue_name => ${queueName},
    run_at => now() + make_interval(secs => ${delaySeconds}),
    max_attempts => 24
  )`.execute(db);
}

/**
 * Stores events and queues their processing atomically, so an acknowledged event is never lost
 * and a redelivery (same event_id, in this batch or stored before) neither stores nor queues
 * anything again. This is the group commit's unit. Answers one outcome per input, in order; the
 * first of several same-id inputs is the one stored.
 */
export async function storeAndEnqueueMany(pool: pg.Pool | pg.PoolClient, events: EventToStore[]): Promise<Array<'stored' | 'duplicate'>> {
  const firstOf = new Map<string, number>();
  events.forEach((e, i) => {
    if (!firstOf.has(e.eventId)) firstOf.set(e.eventId, i);
  });
  const unique = [...firstOf.values()].map((i) => events[i]!);
  const from: number[] = [];
  let offset = 1; // substring() counts from 1
  for (const e of unique) {
    from.push(offset);
    offset += e.payloadSealed.length;
  }
  const res = await pool.query<{ event_id: string }>({
    ...STORE_BATCH,
    values: [
      unique.map((e) => e.eventId),
      unique.map((e) => e.appId),
      unique.map((e) => e.schemaVersion),
      unique.map((e) => e.eventType),
      unique.map((e) => e.tenantKey),
      Buffer.concat(unique.map((e) => e.payloadSealed)),
      from,
      unique.map((e) => e.payloadSealed.length),
      unique.map((e) => e.queueName),
    ],
  });
  const storedIds = new Set(res.rows.map((r) => r.event_id));
  return events.map((e, i) => (firstOf.get(e.eventId) === i && storedIds.has(e.eventId) ? 'stored' : 'duplicate'));
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
