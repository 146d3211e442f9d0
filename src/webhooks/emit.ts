import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import type { WebhookEventType } from './event-types.js';

/** The task of a lane's delivery job (worker/tasks.ts). */
export const DELIVER_TASK = 'deliver_webhooks';

/** A (webhook, tenant) lane's graphile queue: one of its jobs runs at a time, across replicas. */
export const laneQueue = (webhookId: string, tenantKey: string) => `webhook:${webhookId}:${tenantKey}`;

/**
 * An event as a producer states it. `records.changed` names the streams the transaction may have
 * written: emit finds what the transaction changed in each (rows stamped with its own
 * `change_xid`) and announces one event per stream with changes, with the count and the records
 * feed's positions of the first and last row. Other events carry their data as it is sent.
 */
export type WebhookEventInput =
  | { type: 'records.changed'; tenantKey: string; data: { streams: readonly string[] } }
  | { type: Exclude<WebhookEventType, 'records.changed'>; tenantKey: string; data: Record<string, unknown> };

/** What a records.changed event stores: its stream, rows changed, and feed positions (xid.seq) around them. */
export interface RecordsChangedData {
  stream: string;
  count: number;
  /** the position just before the first changed row (a cursor there reads them first) */
  from: { xid: string; seq: string };
  /** the position of the last changed row */
  to: { xid: string; seq: string };
}

/**
 * Webhooks that want these events, delivered in the caller's transaction: the event rows, a
 * delivery per webhook and event, and the lanes woken. `input` yields the events' data (a jsonb
 * column `data`, read only when some webhook wants them); `stream` is each delivery's stream, from
 * its event row `ev`. Waking sets the lane's `awake` flag and queues a job only for a lane that was
 * asleep, so at load (a lane whose job is already queued) a producer pays for no add_jobs call.
 * The flag's row stays locked until the producer commits: the lane's job, which resets it first
 * thing, waits for that commit and so sees these deliveries. Lanes are locked in webhook id order,
 * so two producers of one tenant never deadlock. Nothing is written when no enabled webhook
 * matches. One statement, however many events.
 */
const FAN_OUT = (type: string, tenantKey: string, input: RawBuilder<unknown>, stream: RawBuilder<unknown>, alongside: readonly RawBuilder<unknown>[]) => sql<{ deliveries: number }>`
  with ${alongsideCtes(alongside)} hooks as (
    select id from webhooks
     where status = 'enabled' and ${type}::text = any(event_types)
       and (tenant_keys is null or ${tenantKey}::text = any(tenant_keys))
  ), input as (${input}
  ), ev as (
    insert into webhook_events (type, tenant_key, data)
    select ${type}, ${tenantKey}, i.data from input i where exists (select 1 from hooks)
    returning id, data
  ), dl as (
    insert into webhook_deliveries (webhook_id, tenant_key, event_id, event_type, stream, message_id)
    select h.id, ${tenantKey}, ev.id, ${type}, ${stream}, 'msg_' || replace(gen_random_uuid()::text, '-', '')
      from hooks h cross join ev
     order by h.id, ev.id
    returning webhook_id
  ), woken as (
    insert into webhook_lanes as l (webhook_id, tenant_key, awake)
    select id, ${tenantKey}, true from hooks where exists (select 1 from ev) order by id
    on conflict (webhook_id, tenant_key) do update set awake = true where not l.awake
    returning l.webhook_id
  ), jobs as (${QUEUE_LANE_JOBS('woken', tenantKey)})
  select (select count(*) from dl)::int as deliveries where (select n from jobs) >= 0`;

/**
 * Writes that ride in another statement as data-modifying CTEs (`aside0 as (...), aside1 as (...),`):
 * Postgres runs each to completion whether or not anything reads it. They see the statement's
 * snapshot, not each other's changes, so they must neither write what the statement reads nor
 * touch a row another part of it touches.
 */
function alongsideCtes(writes: readonly RawBuilder<unknown>[]): RawBuilder<unknown> {
  if (writes.length === 0) return sql``;
  return sql`${sql.join(
    writes.map((w, i) => sql`${sql.raw(`aside${i}`)} as (${w})`),
    sql`, `,
  )},`;
}

/** One job per lane of the CTE `cte` (a column webhook_id), calling add_jobs only when there is one. */
function QUEUE_LANE_JOBS(cte: string, tenantKey: string) {
  return sql`
    select count(*) as n from graphile_worker.add_jobs((
      select array_agg(row(${DELIVER_TASK}, json_build_object('webhookId', w.webhook_id::text, 'tenantKey', ${tenantKey}::text),
                           'webhook:' || w.webhook_id || ':' || ${tenantKey}::text, null, 25, null, null, null)::graphile_worker.job_spec
                       order by w.webhook_id)
        from ${sql.table(cte)} w)) where exists (select 1 from ${sql.table(cte)})`;
}

const STREAM_NAME = /^[a-z][a-z0-9_]{0,62}$/;

/**
 * Records an event for the webhooks that want it, in the transaction of the change that causes it
 * (the outbox): committed with the change or not at all. This is the only function producers call.
 * Returns the deliveries queued.
 *
 * `alongside`: the caller's last writes of the transaction (a drain group's event marks and
 * outcomes), made in the same statement as data-modifying CTEs (see alongsideCtes), so the
 * transaction's end costs one round trip instead of one per write. They run even when nothing is
 * announced; an undefined one (nothing to write) is left out.
 */
export async function emitWebhookEvent(
  trx: Transaction<Database> | Kysely<Database>,
  event: WebhookEventInput,
  alongside: ReadonlyArray<RawBuilder<unknown> | undefined> = [],
): Promise<number> {
  const writes = alongside.filter((w): w is RawBuilder<unknown> => w !== undefined);
  let statement;
  if (event.type === 'records.changed') {
    const changed = changedStreams(event.tenantKey, event.data.streams);
    if (!changed) {
      if (writes.length > 0) await sql`with ${alongsideCtes(writes)} done as (select 1) select 1`.execute(trx);
      return 0;
    }
    statement = FAN_OUT(event.type, event.tenantKey, changed, sql`ev.data ->> 'stream'`, writes);
  } else {
    statement = FAN_OUT(event.type, event.tenantKey, sql`select ${JSON.stringify(event.data)}::jsonb as data`, sql`null::text`, writes);
  }
  const res = await statement.execute(trx);
  return res.rows[0]?.deliveries ?? 0;
}

/**
 * What this transaction changed in each stream, as records.changed data (RecordsChangedData): rows
 * it wrote carry its transaction id. Counted only when some enabled webhook wants records.changed
 * for the tenant (FAN_OUT's `hooks`), so a database without such a webhook only pays for that test.
 * One event per stream with changes; positions are text, `from` just before the first row. Undefined
 * when no stream is named.
 */
function changedStreams(tenantKey: string, streams: readonly string[]): RawBuilder<unknown> | undefined {
  const names = [...new Set(streams)].filter((s) => STREAM_NAME.test(s));
  if (names.length === 0) return undefined;
  const parts = names.map(
    (s) => sql`select ${s}::text as stream, count(*)::int as n, min(change_seq) as min_seq, max(change_seq) as max_seq
                 from ${sql.table(s)}
                where exists (select 1 from hooks) and tenant_key = ${tenantKey} and change_xid = pg_current_xact_id()`,
  );
  return sql`
    select jsonb_build_object('stream', c.stream, 'count', c.n,
                              'from', jsonb_build_object('xid', pg_current_xact_id()::text, 'seq', (c.min_seq - 1)::text),
                              'to', jsonb_build_object('xid', pg_current_xact_id()::text, 'seq', c.max_seq::text)) as data
      from (${sql.join(parts, sql` union all `)}) c
     where c.n > 0`;
}

/**
 * Queues a job for each of a webhook's lanes that has pending deliveries (a webhook enabled again,
 * a resend), marking them awake; with `tenantKey`, that lane only.
 */
export async function wakeLanes(db: Kysely<Database>, webhookId: string, tenantKey?: string): Promise<number> {
  const lanes = await db
    .selectFrom('webhook_deliveries')
    .select('tenant_key')
    .distinct()
    .where('webhook_id', '=', webhookId)
    .where('status', '=', 'pending')
    .$if(tenantKey !== undefined, (q) => q.where('tenant_key', '=', tenantKey!))
    .execute();
  for (const { tenant_key } of lanes) {
    await sql`
      with woken as (
        insert into webhook_lanes as l (webhook_id, tenant_key, awake) values (${webhookId}::bigint, ${tenant_key}, true)
        on conflict (webhook_id, tenant_key) do update set awake = true
        returning l.webhook_id),
      jobs as (${QUEUE_LANE_JOBS('woken', tenant_key)})
      select n from jobs`.execute(db);
  }
  return lanes.length;
}

/**
 * The safety net (minute cron): lanes of enabled webhooks holding a delivery due for over a minute
 * with no job left in their queue (a job deleted by hand, or one that failed all its attempts) get
 * a job again. Returns how many.
 */
export async function wakeStalledLanes(db: Kysely<Database>): Promise<number> {
  const stalled = await sql<{ webhook_id: string; tenant_key: string }>`
    select distinct d.webhook_id::text as webhook_id, d.tenant_key
      from webhook_deliveries d
      join webhooks w on w.id = d.webhook_id and w.status = 'enabled'
     where d.status = 'pending'
       and coalesce(d.next_attempt_at, d.created_at) < now() - interval '1 minute'
       and not exists (
         select 1 from graphile_worker._private_jobs j
           join graphile_worker._private_job_queues q on q.id = j.job_queue_id
          where q.queue_name = 'webhook:' || d.webhook_id || ':' || d.tenant_key and j.attempts < j.max_attempts)
     limit 1000`.execute(db);
  for (const lane of stalled.rows) await wakeLanes(db, lane.webhook_id, lane.tenant_key);
  return stalled.rows.length;
}
