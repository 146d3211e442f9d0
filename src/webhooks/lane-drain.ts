import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Sealer } from '../crypto/sealer.js';
import type { Database } from '../db/database.js';
import type { Metrics } from '../metrics/metrics.js';
import { DELIVER_TASK, laneQueue, type RecordsChangedData } from './emit.js';
import type { WebhookEventType } from './event-types.js';
import { buildPayload, mergeRecordsChanged } from './payload.js';
import { openSecrets } from './secrets.js';
import type { SendResult, WebhookSender } from './sender.js';

export interface WebhookOptions {
  /** First retry after this long; each next one waits twice as long, up to `maxRetryDelayMs`. */
  firstRetryDelayMs: number;
  maxRetryDelayMs: number;
  /** A delivery still failing this long after its event (or its resend) is given up. */
  retryWindowMs: number;
  /** An endpoint whose every attempt failed for this long is disabled. */
  disableAfterMs: number;
  timeoutMs: number;
  maxResponseBytes: number;
  /** Work a lane's job does before it yields its worker to other lanes (it queues itself again). */
  sliceMs: number;
  /** What "now" is for retries, the retry window and disabling (a simulated clock in tests). */
  clock: Clock;
}

export const defaultWebhookOptions: WebhookOptions = {
  firstRetryDelayMs: 5_000,
  maxRetryDelayMs: 60 * 60_000,
  retryWindowMs: 24 * 60 * 60_000,
  disableAfterMs: 3 * 24 * 60 * 60_000,
  timeoutMs: 10_000,
  maxResponseBytes: 4 * 1024,
  sliceMs: 10_000,
  clock: systemClock,
};

export interface DispatcherDeps {
  db: Kysely<Database>;
  sealer: Sealer;
  log: Logger;
  metrics: Metrics;
  sender: WebhookSender;
}

/** The lane's webhook and its head: the oldest pending delivery, with its event. */
interface Head {
  webhook_id: string | null;
  url: string;
  webhook_status: string;
  secret_sealed: Buffer;
  previous_secret_sealed: Buffer | null;
  previous_secret_expires_at: Date | null;
  id: string | null;
  message_id: string;
  event_type: WebhookEventType;
  stream: string | null;
  body: string | null;
  attempts: number;
  next_attempt_at: Date | null;
  retry_from: Date;
  visible: boolean;
  data: Record<string, unknown>;
  occurred_at: Date;
  takes_fixed: boolean | null;
  /** the deliveries a records.changed head took in (headCtes), oldest first (null: none, or not such a head) */
  absorbable: Array<{ id: string; data: RecordsChangedData; occurredAt: number }> | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Delay before the retry that follows attempt `attempts` (1-based): doubling, capped, ±20 % jitter. */
export function retryDelayMs(attempts: number, opts: Pick<WebhookOptions, 'firstRetryDelayMs' | 'maxRetryDelayMs'>): number {
  const base = Math.min(opts.maxRetryDelayMs, opts.firstRetryDelayMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * The lane's head (its oldest pending delivery after `after`) with its webhook and event and, for a
 * records.changed head, what it announces besides its own rows, in one statement:
 * - a head whose body is not yet fixed takes in, here, the lane's later pending records.changed of
 *   its stream, up to the next event of another type, whose rows the feed already serves (an
 *   event is never told before one that came earlier, but independent feeds may overtake each
 *   other): they become `coalesced` into it, and the head is marked `takes_fixed`;
 * - a head already fixed (read again: a retry, a visibility wait, a job after a crash) answers the
 *   deliveries it took in then.
 * So the body is fixed by rows before its first attempt and made from them alike at every attempt
 * until one stores it, and a retry sends the same webhook-id with the same rows: a receiver that
 * de-duplicates on webhook-id never drops a change it was not told. Fixing the body used to be a
 * statement of its own before each first attempt.
 *
 * Only the lane's job (its queue runs one at a time across replicas) changes its pending
 * deliveries. As CTEs: `statement` puts them after its own (the delivered attempt's).
 */
function headCtes(webhookId: string, tenantKey: string, after = '0') {
  return sql`
    head as (
      select w.id as webhook_id, w.url, w.status as webhook_status, w.secret_sealed, w.previous_secret_sealed, w.previous_secret_expires_at,
             d.id, d.message_id, d.event_type, d.stream, d.body, d.attempts, d.next_attempt_at, d.retry_from, d.takes_fixed,
             d.xid < (select feed_horizon()) as visible, e.data, e.occurred_at
        from webhooks w
        left join lateral (
          select d.id, d.message_id, d.event_type, d.stream, d.body, d.attempts, d.next_attempt_at, d.retry_from, d.takes_fixed, d.xid, d.event_id
            from webhook_deliveries d
           where d.webhook_id = w.id and d.tenant_key = ${tenantKey} and d.status = 'pending' and d.id > ${after}::bigint
           order by d.id limit 1) d on true
        left join webhook_events e on e.id = d.event_id
       where w.id = ${webhookId}::bigint),
    takeable as (
      select x.id, xe.data, xe.occurred_at
        from head h
        join webhook_deliveries x on x.webhook_id = h.webhook_id and x.tenant_key = ${tenantKey} and x.status = 'pending' and x.id > h.id
        join webhook_events xe on xe.id = x.event_id
       where h.event_type = 'records.changed' and h.body is null and not h.takes_fixed
         and x.event_type = 'records.changed' and x.stream = h.stream and x.body is null
         and x.xid < (select feed_horizon())
         and x.id < coalesce((select min(b.id) from webhook_deliveries b
                               where b.webhook_id = h.webhook_id and b.tenant_key = ${tenantKey} and b.status = 'pending'
                                 and b.id > h.id and b.event_type <> 'records.changed'), 9223372036854775807)),
    taken as (
      update webhook_deliveries x set status = 'coalesced', coalesced_into = h.id
        from head h, takeable t
       where x.id = t.id and x.status = 'pending' and x.body is null
      returning x.id),
    fixed as (
      update webhook_deliveries d set takes_fixed = true
        from head h
       where d.id = h.id and h.event_type = 'records.changed' and h.body is null and not h.takes_fixed)`;
}

/**
 * The head as headCtes leave it, with what it announces besides its own rows (ids as text, times
 * in ms): those it took in before (a fixed head) or in this statement (`takeable` is empty for a
 * fixed head). Columns are named, here and in headCtes, not `h.*` or `select *`: a star expansion
 * keeps a statement unnamed (statement-names.ts), and Postgres would plan the lane's reads again
 * at every call.
 */
const HEAD_SELECT = sql`
  select h.webhook_id, h.url, h.webhook_status, h.secret_sealed, h.previous_secret_sealed, h.previous_secret_expires_at,
         h.id, h.message_id, h.event_type, h.stream, h.body, h.attempts, h.next_attempt_at, h.retry_from, h.takes_fixed,
         h.visible, h.data, h.occurred_at,
         (select json_agg(json_build_object('id', a.id::text, 'data', a.data, 'occurredAt', floor(extract(epoch from a.occurred_at) * 1000)) order by a.id)
            from (select c.id, ce.data, ce.occurred_at
                    from webhook_deliveries c join webhook_events ce on ce.id = c.event_id
                   where h.takes_fixed and c.coalesced_into = h.id and c.status = 'coalesced'
                  union all
                  select t.id, t.data, t.occurred_at from takeable t join taken k on k.id = t.id) a) as absorbable
    from head h`;

/** The lane's head (headCtes, HEAD_SELECT); exported for the named-statements test. */
export function headQuery(webhookId: string, tenantKey: string) {
  return sql<Head>`with ${headCtes(webhookId, tenantKey)} ${HEAD_SELECT}`;
}

/**
 * Sends a lane's deliveries: the pending ones of one (webhook, tenant), strictly in id order, each
 * to its end (delivered, or given up after the retry window) before the next. Run by the lane's
 * job (`deliver_webhooks`, queue `webhook:<id>:<tenant>`: one at a time across replicas).
 *
 * - The head is attempted; a success moves on at once, a failure schedules the lane's next job for
 *   the head's retry and ends this one (later deliveries wait behind it: order before speed).
 * - records.changed waits until the records feed serves its rows (its transaction is below every
 *   snapshot's xmin), so a receiver that reads the feed on receipt finds them. Before its first
 *   attempt it absorbs the lane's later pending records.changed of the same stream (up to the next
 *   event of another type): one webhook for many pages while the receiver is slow or down.
 * - The body is fixed at the first attempt; retries and resends send the same bytes under the same
 *   webhook-id, so a receiver de-duplicating on webhook-id sees each event once.
 */
export class WebhookDispatcher {
  constructor(
    private readonly deps: DispatcherDeps,
    readonly options: WebhookOptions,
  ) {}

  /** Closes the sender's idle connections (at shutdown). */
  close(): void {
    this.deps.sender.close();
  }

  private get now(): Date {
    return this.options.clock.now();
  }

  async drainLane(webhookId: string, tenantKey: string): Promise<void> {
    const { db } = this.deps;
    // From here on a producer that commits into this lane queues another job (see emit.ts).
    await db.updateTable('webhook_lanes').set({ awake: false }).where('webhook_id', '=', webhookId).where('tenant_key', '=', tenantKey).execute();
    const until = performance.now() + this.options.sliceMs;
    let waits = 0;
    /** the head as the last delivered attempt read it (undefined: read it now) */
    let next: Head | undefined;
    for (;;) {
      const head = next ?? (await this.head(webhookId, tenantKey));
      next = undefined;
      if (!head?.webhook_id || head.webhook_status !== 'enabled' || head.id === null) return;
      if (head.next_attempt_at && head.next_attempt_at > this.now) {
        await this.schedule(webhookId, tenantKey, head.next_attempt_at.getTime() - this.now.getTime());
        return;
      }
      if (performance.now() > until) {
        await this.schedule(webhookId, tenantKey, 0);
        return;
      }
      if (head.event_type === 'records.changed' && !head.visible) {
        // A transaction older than its own is still open somewhere on the server: the feed would
        // not serve its rows yet. Usually a matter of milliseconds; a long one (a report, a dump)
        // gets the lane looked at again every 250 ms without holding a worker slot.
        waits += 1;
        if (waits > 10) {
          await this.schedule(webhookId, tenantKey, 250);
          return;
        }
        await sleep(20);
        continue;
      }
      const body = head.body ?? this.body(head, tenantKey);
      const outcome = await this.attempt(head, body, tenantKey);
      if (outcome === 'retry') return;
      if (outcome !== 'next') next = outcome.next;
    }
  }

  private async head(webhookId: string, tenantKey: string): Promise<Head | undefined> {
    return (await headQuery(webhookId, tenantKey).execute(this.deps.db)).rows[0];
  }

  /**
   * The head's body, for an attempt before one has stored it: a records.changed head's is made of
   * its own rows and those it took in when it was read (headCtes), the same at every attempt.
   */
  private body(head: Head, tenantKey: string): string {
    const event = { type: head.event_type, tenantKey, data: head.data, occurredAt: head.occurred_at };
    if (head.event_type !== 'records.changed') return buildPayload(event);
    const taken = head.absorbable ?? [];
    const all = [head.data as unknown as RecordsChangedData, ...taken.map((r) => r.data)];
    const last = taken.at(-1);
    const lastAt = last ? new Date(last.occurredAt) : head.occurred_at;
    return buildPayload(event, { data: mergeRecordsChanged(all), events: all.length, lastAt });
  }

  /**
   * One attempt of the head, recorded in one statement with what it means for the delivery and the
   * endpoint. Delivered: the lane's next head, read in that statement; 'next': go on (read it);
   * 'retry': the lane's job ends (its next one is scheduled, or the endpoint is disabled).
   */
  private async attempt(head: Head, body: string, tenantKey: string): Promise<'next' | 'retry' | { next: Head | undefined }> {
    const { db, log, metrics } = this.deps;
    const at = this.now;
    let result: SendResult;
    try {
      const secrets = openSecrets(this.deps.sealer, { id: head.webhook_id!, secret_sealed: head.secret_sealed, previous_secret_sealed: head.previous_secret_sealed, previous_secret_expires_at: head.previous_secret_expires_at }, at);
      // Signed with the real time: receivers check webhook-timestamp against their own clocks.
      result = await this.deps.sender.send({ url: head.url, messageId: head.message_id, body, secrets }, new Date());
    } catch (err) {
      log.error({ webhookId: head.webhook_id, deliveryId: head.id, errMessage: (err as Error).message }, 'webhook delivery could not be signed or sent');
      result = { statusCode: null, ok: false, latencyMs: 0, error: 'the delivery could not be signed (see the server log)' };
    }
    metrics.webhookLatency.observe(result.latencyMs / 1000);
    const attempt = sql`insert into webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error)
                        values (${head.id}::bigint, ${at}, ${result.statusCode}, ${result.latencyMs}, ${result.error})`;
    if (result.ok) {
      // Recorded, and the lane's next head read, in one statement (it sees the lane as before the
      // statement, where this head is still pending: hence "after").
      const res = await sql<Head>`
        with delivered as (
          update webhook_deliveries set status = 'delivered', body = coalesce(body, ${body}), attempts = attempts + 1,
                 last_status_code = ${result.statusCode}, last_error = null, last_attempt_at = ${at}, delivered_at = ${at}, next_attempt_at = null
           where id = ${head.id}::bigint and status = 'pending'),
        tried as (${attempt}),
        succeeded as (
          update webhooks set failing_since = null, last_success_at = ${at}
           where id = ${head.webhook_id}::bigint
             and (failing_since is not null or last_success_at is null or last_success_at < ${at}::timestamptz - interval '1 minute')),
        ${headCtes(head.webhook_id!, tenantKey, head.id!)}
        ${HEAD_SELECT}`.execute(db);
      metrics.webhookAttempts.inc({ outcome: 'delivered' });
      metrics.webhookLag.observe(Math.max(0, Date.now() - head.occurred_at.getTime()) / 1000);
      return { next: res.rows[0] };
    }

    const delayMs = retryDelayMs(head.attempts + 1, this.options);
    const next = new Date(at.getTime() + delayMs);
    const windowEnd = new Date(at.getTime() - this.options.retryWindowMs);
    const disableBefore = new Date(at.getTime() - this.options.disableAfterMs);
    const res = await sql<{ status: string; webhook_status: string; failing_since: Date }>`
      with d as (
        update webhook_deliveries set attempts = attempts + 1, body = coalesce(body, ${body}),
               last_status_code = ${result.statusCode}, last_error = ${result.error}, last_attempt_at = ${at},
               -- the window runs from the first attempt (or the last resend)
               retry_from = case when attempts = 0 then ${at} else retry_from end,
               status = case when (case when attempts = 0 then ${at} else retry_from end) <= ${windowEnd} then 'failed' else 'pending' end,
               next_attempt_at = case when (case when attempts = 0 then ${at} else retry_from end) <= ${windowEnd} then null else ${next}::timestamptz end
         where id = ${head.id}::bigint and status = 'pending'
        returning status),
      a as (${attempt}),
      w as (
        update webhooks set
               failing_since = coalesce(failing_since, ${at}),
               last_failure_at = ${at},
               status = case when coalesce(failing_since, ${at}) <= ${disableBefore} then 'disabled' else status end,
               disabled_at = case when coalesce(failing_since, ${at}) <= ${disableBefore} then ${at} else disabled_at end,
               disabled_reason = case when coalesce(failing_since, ${at}) <= ${disableBefore}
                 then 'every delivery attempt failed since ' || to_char(coalesce(failing_since, ${at}) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                      || ' (' || ${Math.round(this.options.disableAfterMs / 3_600_000)}::text || ' hours); the last: ' || ${result.error ?? 'failed'}::text
                 else disabled_reason end,
               updated_at = case when coalesce(failing_since, ${at}) <= ${disableBefore} then now() else updated_at end
         where id = ${head.webhook_id}::bigint and status = 'enabled'
        returning status, failing_since)
      select (select status from d) as status, (select status from w) as webhook_status, (select failing_since from w) as failing_since`.execute(db);
    const row = res.rows[0];
    if (row?.webhook_status === 'disabled') {
      log.warn({ webhookId: head.webhook_id, failingSince: row.failing_since }, 'webhook disabled: its endpoint failed every attempt for the disable period');
    }
    if (row?.status === 'failed') {
      metrics.webhookAttempts.inc({ outcome: 'gave_up' });
      // The endpoint failed for the whole window: deliveries of this lane that have waited as long
      // go too, rather than each getting a window of its own against an endpoint that is down.
      await sql`
        update webhook_deliveries set status = 'failed', last_error = 'not delivered within the retry window (the endpoint kept failing)'
         where webhook_id = ${head.webhook_id}::bigint and tenant_key = ${tenantKey} and status = 'pending'
           and retry_from <= ${windowEnd}`.execute(db);
      return row.webhook_status === 'disabled' ? 'retry' : 'next';
    }
    metrics.webhookAttempts.inc({ outcome: 'failed' });
    if (row?.webhook_status !== 'disabled') await this.schedule(head.webhook_id!, tenantKey, delayMs);
    return 'retry';
  }

  /**
   * The lane's next job, in `delayMs`: it stays awake meanwhile, so producers queue nothing more.
   * The job's key keeps one such job per lane however often this is called.
   */
  private async schedule(webhookId: string, tenantKey: string, delayMs: number): Promise<void> {
    const queue = laneQueue(webhookId, tenantKey);
    await sql`
      with l as (
        insert into webhook_lanes as l (webhook_id, tenant_key, awake) values (${webhookId}::bigint, ${tenantKey}, true)
        on conflict (webhook_id, tenant_key) do update set awake = true)
      select graphile_worker.add_job(${DELIVER_TASK}, json_build_object('webhookId', ${webhookId}::text, 'tenantKey', ${tenantKey}::text),
               queue_name => ${queue}, run_at => now() + make_interval(secs => ${Math.max(0, delayMs) / 1000}),
               max_attempts => 25, job_key => ${`${queue}:next`})`.execute(this.deps.db);
  }
}
