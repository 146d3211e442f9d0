import { sql, type Kysely } from 'kysely';
import type pg from 'pg';
import type { Database } from '../db/database.js';
import type { FailedEventCounts } from '../metrics/metrics.js';
import type { LarkEventRow } from './events.table.js';
import { EVENT_ID_MIN_RETENTION_SECONDS } from './replay-window.js';

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
 * Shards of event handling: a tenant's events (an app's, without a tenant) always fall in the same
 * shard, whose drain job handles them one at a time in id order, while the shards run in parallel.
 * A power of two (the statement masks the hash); the migration that added shards used 8 too.
 */
export const EVENT_SHARDS = 8;

/** The task of a shard's drain job (tasks.ts); its queue is `lark-events:<shard>`. */
export const DRAIN_TASK = 'drain_lark_events';

/**
 * Wakes the shards the query lists (see STORE_BATCH) and returns those it woke: the ones that
 * were asleep, or with `force` every one (the sweep's repair of a flag whose job was lost).
 */
const WAKE_SHARDS = (shards: string, opts: { force?: boolean } = {}) => `
      insert into lark_event_shards as s (shard, awake)
      select shard, true from (${shards}) x order by shard
      on conflict (shard) do update set awake = true${opts.force ? '' : ' where not s.awake'}
      returning s.shard`;

/**
 * Queues a drain job per shard of the CTE named, calling add_jobs only when there is one. With
 * `keyed`, the job carries a per-shard key, so queueing it again replaces a job not yet started.
 */
const QUEUE_DRAINS = (cte: string, opts: { keyed?: boolean } = {}) => `
      select count(*) as n from graphile_worker.add_jobs((
        select array_agg(row('${DRAIN_TASK}', json_build_object('shard', w.shard), 'lark-events:' || w.shard, null, 25,
                             ${opts.keyed ? "'lark-events-sweep:' || w.shard" : 'null'}, null, null)::graphile_worker.job_spec)
          from ${cte} w)) where exists (select 1 from ${cte})`;

/**
 * One statement stores a batch: the rows, then the shards they fall in are woken. Waking locks the
 * shard's row (ON CONFLICT DO UPDATE locks it even where the WHERE leaves it unchanged) and queues
 * a drain job only for a shard that was asleep. A shard already awake has a drain job that has not
 * started: it resets `awake` first, which waits for this lock, so it sees these rows. At load, most
 * batches find their shards awake and queue nothing: graphile-worker's add_jobs costs about 0.7 ms
 * of Postgres per call, which a job (or a job per shard) per batch paid every time and which was
 * half of the endpoint's Postgres time. Shards are locked in order, so two replicas' batches do not
 * deadlock. The jobs CTE is referenced by the outer select, so it always runs; add_jobs itself is
 * not called when no shard woke. One statement is atomic without BEGIN/COMMIT, and prepared once
 * per connection. Payloads travel as one binary blob with offsets: a bytea[] parameter would be
 * hex-escaped text, which costs more than the insert on both ends.
 */
const STORE_BATCH = {
  name: 'larksync_store_lark_events_v2',
  text: `
    with input as (
      select i.event_id, i.app_id, i.schema_version, i.event_type, i.tenant_key,
             substring($6::bytea from i.payload_from for i.payload_length) as payload_sealed, i.ord
        from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::int[], $8::int[])
             with ordinality as i(event_id, app_id, schema_version, event_type, tenant_key, payload_from, payload_length, ord)
    ), inserted as (
      insert into lark_events (event_id, app_id, schema_version, event_type, tenant_key, payload_sealed, shard)
      select event_id, app_id, schema_version, event_type, tenant_key, payload_sealed,
             (hashtextextended(coalesce('t:' || tenant_key, 'a:' || coalesce(app_id, '')), 0) & ${EVENT_SHARDS - 1})::smallint
        from input order by ord
      on conflict (event_id) do nothing
      returning event_id, shard
    ), woken as (${WAKE_SHARDS('select distinct shard from inserted')}
    ), jobs as (${QUEUE_DRAINS('woken')})
    select event_id from inserted where (select n from jobs) >= 0`,
};

/** The task of a failed event's retry job (tasks.ts). */
export const RETRY_TASK = 'handle_lark_event';

/**
 * Attempts an event gets in all: its drain job's, then its retry jobs' (as many as are left). An
 * event failed this often stays `failed` ("given up", counted by larksync_events_failed).
 */
export const EVENT_MAX_ATTEMPTS = 25;

/** One retry job per event: queueing it again replaces a job not yet started instead of adding one. */
export const retryJobKey = (id: string) => `lark-event:${id}`;

/**
 * A failed event is retried on its own, in its tenant's queue, so it does not hold up its shard.
 * Marking it failed and queueing that retry are one statement, hence one transaction: a process
 * killed at any instant leaves the event pending (its shard's drain reads it again) or failed
 * with a job, never failed with nothing left to retry it. No job is queued once the event has
 * used its attempts.
 */
export async function failAndScheduleRetry(
  db: Kysely<Database>,
  id: string,
  error: string,
  queueName: string,
  delaySeconds: number,
): Promise<void> {
  await sql`
    with failed as (
      update lark_events
         set status = 'failed', last_error = ${error}, processed_at = null, attempts = attempts + 1
       where id = ${id}
      returning attempts)
    select graphile_worker.add_job(
             ${RETRY_TASK},
             json_build_object('id', ${id}::text),
             queue_name => ${queueName},
             run_at => now() + make_interval(secs => ${delaySeconds}),
             max_attempts => (${EVENT_MAX_ATTEMPTS} - failed.attempts)::int,
             job_key => ${retryJobKey(id)})
      from failed
     where failed.attempts < ${EVENT_MAX_ATTEMPTS}`.execute(db);
}

/** A retry job that can still run: waiting with attempts left, or running right now. */
const LIVE_RETRY_JOB = (eventId: string) => `
  exists (select 1 from graphile_worker.jobs j
           where j.key = 'lark-event:' || ${eventId} and (j.attempts < j.max_attempts or j.locked_at is not null))`;

/**
 * Failed events with attempts left and no retry job that can still run: the minute sweep's
 * safety net for a job deleted by hand, or a failure recorded by a version that marked and queued
 * in two steps. Retry jobs queued before they had keys are not seen, so such an event may get a
 * second job; handling it twice is harmless (a handled event is skipped).
 */
export async function orphanedFailedEvents(
  db: Kysely<Database>,
  limit: number,
): Promise<Array<Pick<LarkEventRow, 'id' | 'event_type' | 'tenant_key' | 'app_id' | 'attempts'>>> {
  const res = await sql<Pick<LarkEventRow, 'id' | 'event_type' | 'tenant_key' | 'app_id' | 'attempts'>>`
    select e.id::text as id, e.event_type, e.tenant_key, e.app_id, e.attempts
      from lark_events e
     where e.status = 'failed' and e.attempts < ${EVENT_MAX_ATTEMPTS}
       and not ${sql.raw(LIVE_RETRY_JOB('e.id'))}
     order by e.id
     limit ${limit}`.execute(db);
  return res.rows;
}

/**
 * Queues the retry of one event the sweep found orphaned, checked again in the same statement
 * (it may have been handled, or given a job, since it was listed). Returns whether it queued.
 */
export async function requeueFailedEvent(db: Kysely<Database>, id: string, queueName: string): Promise<boolean> {
  const res = await sql<{ id: string }>`
    select (graphile_worker.add_job(
              ${RETRY_TASK},
              json_build_object('id', e.id::text),
              queue_name => ${queueName},
              max_attempts => (${EVENT_MAX_ATTEMPTS} - e.attempts)::int,
              job_key => 'lark-event:' || e.id)).id::text as id
      from lark_events e
     where e.id = ${id} and e.status = 'failed' and e.attempts < ${EVENT_MAX_ATTEMPTS}
       and not ${sql.raw(LIVE_RETRY_JOB('e.id'))}`.execute(db);
  return res.rows.length > 0;
}

/** Failed events now: with attempts left (a job retries them) and given up. */
export async function countFailedEvents(db: Kysely<Database>): Promise<FailedEventCounts> {
  const res = await sql<{ retrying: string; given_up: string }>`
    select count(*) filter (where attempts < ${EVENT_MAX_ATTEMPTS}) as retrying,
           count(*) filter (where attempts >= ${EVENT_MAX_ATTEMPTS}) as given_up
      from lark_events where status = 'failed'`.execute(db);
  const row = res.rows[0];
  return { retrying: Number(row?.retrying ?? 0), given_up: Number(row?.given_up ?? 0) };
}

/**
 * Stores events and wakes their shards atomically, so an acknowledged event is never lost and a
 * redelivery (same event_id, in this batch or stored before) neither stores nor wakes anything
 * again. This is the group commit's unit. Answers one outcome per input, in order; the first of
 * several same-id inputs is the one stored.
 */
export async function storeEventBatch(pool: pg.Pool | pg.PoolClient, events: NewStoredEvent[]): Promise<Array<'stored' | 'duplicate'>> {
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
    ],
  });
  const storedIds = new Set(res.rows.map((r) => r.event_id));
  return events.map((e, i) => (firstOf.get(e.eventId) === i && storedIds.has(e.eventId) ? 'stored' : 'duplicate'));
}

/** A drain job starting: from here on, a batch that stores into this shard wakes it again. */
export async function sleepShard(db: Kysely<Database>, shard: number): Promise<void> {
  await db.updateTable('lark_event_shards').set({ awake: false }).where('shard', '=', shard).execute();
}

/** The shard's pending events, oldest first. */
export async function pendingEventIds(db: Kysely<Database>, shard: number, limit: number): Promise<string[]> {
  const rows = await db
    .selectFrom('lark_events')
    .select('id')
    .where('shard', '=', shard)
    .where('status', '=', 'pending')
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => r.id);
}

/**
 * Queues a drain job for the shard unless one is queued and not started; with `force`, whatever
 * the flag says (a drain handing its shard's rest on while it kept the shard awake).
 */
export async function wakeShard(db: Kysely<Database>, shard: number, opts: { force?: boolean } = {}): Promise<void> {
  await sql`with woken as (${sql.raw(WAKE_SHARDS(`select ${Number(shard)}::smallint as shard`, opts))}),
                 jobs as (${sql.raw(QUEUE_DRAINS('woken'))})
            select n from jobs`.execute(db);
}

/**
 * The safety net: a shard holding events pending for longer than this gets a drain job whatever
 * its flag says. The flag can only be wrong if its job was lost (deleted by hand, or failed all its
 * attempts), but then the shard's events would wait forever. The job key keeps one such job per
 * shard however often this runs.
 */
export async function wakeStalledShards(db: Kysely<Database>, olderThanSeconds: number): Promise<number[]> {
  const stalled = `select s.shard::smallint as shard from generate_series(0, ${EVENT_SHARDS - 1}) s(shard)
                    where exists (select 1 from lark_events e
                                   where e.shard = s.shard and e.status = 'pending'
                                     and e.received_at < now() - make_interval(secs => ${Number(olderThanSeconds)}))`;
  const res = await sql<{ shard: number }>`
    with woken as (${sql.raw(WAKE_SHARDS(stalled, { force: true }))}),
         jobs as (${sql.raw(QUEUE_DRAINS('woken', { keyed: true }))})
    select shard from woken where (select n from jobs) >= 0 order by shard`.execute(db);
  return res.rows.map((r) => r.shard);
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

/**
 * Forgets handled events received more than `days` ago, but never sooner than
 * EVENT_ID_MIN_RETENTION_SECONDS whatever `days` says: a push inside the signature window must
 * still find its id, so that its replay is a de-duplicated no-op (replay-window.ts).
 */
export async function purgeEventsOlderThan(db: Kysely<Database>, days: number): Promise<number> {
  const seconds = Number.isFinite(days) ? Math.max(days * 86_400, EVENT_ID_MIN_RETENTION_SECONDS) : EVENT_ID_MIN_RETENTION_SECONDS;
  const res = await db
    .deleteFrom('lark_events')
    .where('received_at', '<', sql<Date>`now() - make_interval(secs => ${seconds})`)
    .where('status', '!=', 'pending')
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}
