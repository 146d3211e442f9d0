import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { encryptPush, signPush } from '../../src/lark/event-crypto.js';
import type { TestDatabase } from './db.js';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { STORE_APP, type Stack } from './stack.js';
import { waitFor } from './wait.js';

export const newId = () => randomUUID().replace(/-/g, '');

/** Tasks of the jobs that handle events: a shard's drain, a single event's retry, an old batch. */
export const EVENT_TASKS = ['drain_lark_events', 'handle_lark_event', 'handle_lark_events'];

/** How many events are stored and how many jobs (drain, batch or single) are queued for them (unfinished). */
export async function eventCounts(db: TestDatabase): Promise<{ events: number; jobs: number }> {
  const events = await sql<{ n: string }>`select count(*)::text as n from lark_events`.execute(db.db);
  const jobs = await sql<{ n: string }>`
    select count(*)::text as n from graphile_worker.jobs where task_identifier = any(${EVENT_TASKS}::text[])`.execute(db.db);
  return { events: Number(events.rows[0]?.n ?? 0), jobs: Number(jobs.rows[0]?.n ?? 0) };
}

/** Jobs ever queued for events, finished or not: graphile-worker deletes finished jobs, ids stay. */
export async function maxJobId(db: TestDatabase): Promise<number> {
  const r = await sql<{ m: string | null }>`select max(id)::text as m from graphile_worker._private_jobs`.execute(db.db);
  return Number(r.rows[0]?.m ?? 0);
}

export function v1Body(event: Record<string, unknown>, opts: { uuid?: string; token?: string; ts?: number } = {}) {
  return {
    ts: ((opts.ts ?? Date.now()) / 1000).toFixed(6),
    uuid: opts.uuid ?? newId(),
    token: opts.token ?? STORE_APP.verificationToken,
    type: 'event_callback',
    event,
  };
}

export function v2Body(eventType: string, event: Record<string, unknown>, opts: { eventId?: string; token?: string; tenantKey?: string } = {}) {
  return {
    schema: '2.0',
    header: {
      event_id: opts.eventId ?? newId(),
      token: opts.token ?? STORE_APP.verificationToken,
      create_time: String(Date.now()),
      event_type: eventType,
      tenant_key: opts.tenantKey ?? '',
      app_id: STORE_APP.appId,
    },
    event,
  };
}

export interface Wire {
  body: string;
  headers: Record<string, string>;
}

/** Encrypts and signs like Lark, with every knob a test needs to get one part wrong. */
export function encryptedWire(
  plaintext: string,
  opts: { timestamp?: string; nonce?: string; encryptKey?: string; signKey?: string } = {},
): Wire {
  const encryptKey = opts.encryptKey ?? STORE_APP.encryptKey;
  const body = JSON.stringify({ encrypt: encryptPush(encryptKey, plaintext) });
  return signedWire(body, { ...opts, signKey: opts.signKey ?? STORE_APP.encryptKey });
}

/** Signs an arbitrary raw body (which need not be valid JSON or a valid ciphertext). */
export function signedWire(body: string, opts: { timestamp?: string; nonce?: string; signKey?: string } = {}): Wire {
  const timestamp = opts.timestamp ?? String(Math.floor(Date.now() / 1000));
  const nonce = opts.nonce ?? randomBytes(8).toString('hex');
  return {
    body,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'x-lark-request-timestamp': timestamp,
      'x-lark-request-nonce': nonce,
      'x-lark-signature': signPush(timestamp, nonce, opts.signKey ?? STORE_APP.encryptKey, body),
    },
  };
}

export const plainWire = (plaintext: string): Wire => ({ body: plaintext, headers: { 'content-type': 'application/json; charset=utf-8' } });

export interface PostResult {
  status: number;
  text: string;
  json: unknown;
  ms: number;
}

export async function postRaw(url: string, wire: { body: string | Buffer; headers: Record<string, string> }): Promise<PostResult> {
  const started = performance.now();
  const body = typeof wire.body === 'string' ? wire.body : new Uint8Array(wire.body);
  const res = await fetch(url, { method: 'POST', body, headers: wire.headers, signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, ms: performance.now() - started };
}

/**
 * Waits until the ticket that startup asks for has been pushed and answered, so that push neither
 * lands in the middle of a test's row counts nor is in flight when the stack stops.
 */
export async function settleStartupTicket(stack: Stack): Promise<void> {
  await waitFor(() => stack.sim.count(AUTH_PATHS.ticketResend) >= 1, 10_000, 'the startup ticket resend');
  await stack.sim.settle();
}

/** Event ids listed by queued retry and batch jobs, with their queue. */
const queuedIdsQuery = sql`
    select coalesce(ids.id, j.payload->>'id') as id, q.queue_name as queue
      from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
      left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
      left join lateral json_array_elements_text(case when json_typeof(j.payload->'ids') = 'array' then j.payload->'ids' else '[]'::json end) as ids(id) on true
     where t.identifier in ('handle_lark_event', 'handle_lark_events')`;

/**
 * Pending events that no queued job will read: neither a drain job of their shard that has not
 * started (it reads every pending event of the shard) nor a job listing them. Empty is the promise
 * an acknowledgement makes.
 */
export async function eventsWithoutJob(db: TestDatabase): Promise<string[]> {
  const r = await sql<{ event_id: string }>`
    select e.event_id from lark_events e
     where e.status = 'pending'
       and not exists (select 1 from graphile_worker._private_jobs j
                         join graphile_worker._private_tasks t on t.id = j.task_id
                        where j.locked_at is null and t.identifier = 'drain_lark_events' and (j.payload->>'shard')::int = e.shard)
       and e.id::text not in (select id from (${queuedIdsQuery}) q where id is not null)`.execute(db.db);
  return r.rows.map((x) => x.event_id);
}

/** Queued and running drain jobs: the shard each reads and the queue it runs in. */
export async function drainJobs(db: TestDatabase): Promise<Array<{ shard: number; queue: string; locked: boolean }>> {
  const r = await sql<{ shard: number; queue: string; locked: boolean }>`
    select (j.payload->>'shard')::int as shard, q.queue_name as queue, j.locked_at is not null as locked
      from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
      left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
     where t.identifier = 'drain_lark_events'
     order by j.id`.execute(db.db);
  return r.rows;
}

/** Shards whose drain job is queued and not started, by the shards' own flag. */
export async function awakeShards(db: TestDatabase): Promise<number[]> {
  const rows = await db.db.selectFrom('lark_event_shards').select('shard').where('awake', '=', true).orderBy('shard').execute();
  return rows.map((r) => r.shard);
}

/** Ids of stored events listed by queued event jobs (a batch job lists several), one entry per listing. */
export async function queuedEventIds(db: TestDatabase): Promise<Array<{ id: string; queue: string | null }>> {
  const r = await sql<{ id: string; queue: string | null }>`${queuedIdsQuery}`.execute(db.db);
  return r.rows;
}
