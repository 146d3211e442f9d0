import { sql } from 'kysely';
import { STORE_APP, type Stack } from './stack.js';
import { EVENT_TASKS, v1Body, v2Body } from './events-helpers.js';
import { fingerprint, watchedTables, type Fingerprints } from './table-fingerprints.js';

const appId = STORE_APP.appId;

/** One push of a store app's life, as Lark sends it (events.md §8; v2 for other subscriptions). */
export type HistoryStep =
  | { kind: 'ticket' }
  | { kind: 'open'; tenant: string; byMember?: boolean }
  | { kind: 'status'; tenant: string; status: 'start_by_tenant' | 'stop_by_tenant' | 'stop_by_platform' }
  | { kind: 'uninstall'; tenant: string }
  | { kind: 'v2'; tenant: string; eventType: string };

/**
 * A realistic history for four tenants whose keys start with `prefix`: installs (by an admin and
 * by a member), pauses and resumes, a platform stop, an uninstall and re-install, a status change
 * for a tenant never seen opening, hourly app_tickets, and v2 events of other subscriptions (types no module handles:
 * change events are tested in test/events-in/).
 */
export function storeAppHistory(prefix: string): HistoryStep[] {
  const [a, b, c, d] = ['alpha', 'beta', 'gamma', 'delta'].map((n) => `${prefix}-${n}`) as [string, string, string, string];
  return [
    { kind: 'ticket' },
    { kind: 'open', tenant: a },
    { kind: 'open', tenant: b, byMember: true },
    { kind: 'v2', tenant: a, eventType: 'im.message.message_read_v1' },
    { kind: 'status', tenant: a, status: 'stop_by_tenant' },
    { kind: 'ticket' },
    { kind: 'status', tenant: a, status: 'start_by_tenant' },
    { kind: 'open', tenant: c },
    { kind: 'status', tenant: b, status: 'stop_by_platform' },
    { kind: 'v2', tenant: b, eventType: 'im.message.receive_v1' },
    { kind: 'uninstall', tenant: c },
    { kind: 'open', tenant: c },
    { kind: 'status', tenant: d, status: 'start_by_tenant' },
    { kind: 'v2', tenant: c, eventType: 'im.chat.disbanded_v1' },
    { kind: 'uninstall', tenant: d },
    { kind: 'ticket' },
    { kind: 'uninstall', tenant: a },
  ];
}

/** The tenant keys a history touches. */
export const historyTenants = (steps: HistoryStep[]): string[] => [...new Set(steps.flatMap((s) => ('tenant' in s ? [s.tenant] : [])))];

/** One delivery's answer; status 0 when none came within Lark's 3 s (Lark counts that as failed). */
export interface Delivery {
  eventId: string;
  status: number;
  body: string;
}

/**
 * Creates the events of a history and delivers them to larksync exactly as the simulator does
 * (its own wire format: encrypted, signed with a fresh timestamp and nonce on every delivery),
 * keeping each event's plaintext so it can be delivered again, or several times at once.
 */
export class EventPusher {
  private readonly plaintexts = new Map<string, string>();

  constructor(private readonly stack: Stack) {}

  /** Builds the push for a step and applies its upstream side (install, uninstall, new ticket). */
  create(step: HistoryStep): string {
    const sim = this.stack.sim;
    let body: Record<string, unknown>;
    switch (step.kind) {
      case 'ticket':
        body = v1Body({ app_id: appId, app_ticket: sim.issueTicket(appId), type: 'app_ticket' });
        break;
      case 'open':
        sim.installTenant(appId, step.tenant);
        body = v1Body({
          app_id: appId,
          tenant_key: step.tenant,
          type: 'app_open',
          applicants: [{ open_id: `ou_applicant_${step.tenant}` }],
          ...(step.byMember ? { installer_employee: { open_id: `ou_member_${step.tenant}` } } : { installer: { open_id: `ou_admin_${step.tenant}` } }),
        });
        break;
      case 'status':
        body = v1Body({
          app_id: appId,
          tenant_key: step.tenant,
          type: 'app_status_change',
          status: step.status,
          ...(step.status === 'start_by_tenant' ? { operator: { open_id: `ou_admin_${step.tenant}` } } : {}),
        });
        break;
      case 'uninstall':
        sim.uninstallTenant(appId, step.tenant);
        body = v1Body({ app_id: appId, tenant_key: step.tenant, type: 'app_uninstalled' });
        break;
      case 'v2':
        body = v2Body(step.eventType, { object: { tenant: step.tenant } }, { tenantKey: step.tenant });
        break;
    }
    const id = step.kind === 'v2' ? (body.header as { event_id: string }).event_id : (body.uuid as string);
    this.plaintexts.set(id, JSON.stringify(body));
    return id;
  }

  /** One delivery of an event; events this pusher did not create are asked of the simulator. */
  async send(id: string): Promise<Delivery> {
    const plaintext = this.plaintexts.get(id);
    if (plaintext === undefined) {
      const res = await this.stack.sim.redeliver(id);
      return { eventId: id, status: res.status, body: res.body };
    }
    const { body, headers } = this.stack.sim.wireFormat(appId, plaintext);
    try {
      // Lark's deadline, as the simulator's own pushes use it.
      const res = await fetch(this.stack.eventsUrl, { method: 'POST', body, headers, signal: AbortSignal.timeout(3_000) });
      return { eventId: id, status: res.status, body: await res.text() };
    } catch {
      return { eventId: id, status: 0, body: '' };
    }
  }
}

/** Lark retries a failed push after 15 s, 5 min, 1 h and 6 h (events.md §7). */
export const LARK_RETRY_OFFSETS_S = [15, 5 * 60, 60 * 60, 6 * 60 * 60] as const;

export interface ReplayOptions {
  /** real milliseconds per second of Lark's schedule (1 / 20 000 puts +6 h at ~1.1 s) */
  msPerSecond: number;
  /** real milliseconds between the first deliveries of consecutive events */
  spacingMs: number;
  /** copies sent at the same instant, per retry (index into LARK_RETRY_OFFSETS_S) */
  copies: readonly number[];
  /** called just before each copy is sent (e.g. to note whether the original is still being processed) */
  beforeSend?: (eventId: string) => Promise<void> | void;
}

/**
 * Delivers every event again on Lark's retry schedule, compressed: event i's retries at
 * `i * spacingMs + offset * msPerSecond`, so retries keep the original order per retry round and
 * different events' retries interleave, with some rounds sending several copies concurrently.
 */
export async function replayOnLarkSchedule(pusher: EventPusher, eventIds: string[], opts: ReplayOptions): Promise<Delivery[]> {
  const sends: Array<Promise<Delivery[]>> = [];
  eventIds.forEach((id, i) => {
    LARK_RETRY_OFFSETS_S.forEach((offset, round) => {
      const at = i * opts.spacingMs + offset * opts.msPerSecond;
      const copies = opts.copies[round] ?? 1;
      sends.push(
        new Promise<void>((r) => setTimeout(r, at)).then(() =>
          Promise.all(
            Array.from({ length: copies }, async () => {
              await opts.beforeSend?.(id);
              return pusher.send(id);
            }),
          ),
        ),
      );
    });
  });
  return (await Promise.all(sends)).flat();
}

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : v);
const plain = (rows: Array<Record<string, unknown>>) => rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, iso(v)])));

/** What an event replay must not change, table by table, plus a fingerprint of every table. */
export interface EventState {
  tenants: unknown[];
  audit: unknown[];
  tickets: unknown[];
  tokens: unknown[];
  events: unknown[];
  /** jobs ever queued (the id sequence) and jobs still in the table */
  jobs: { everQueued: number; waiting: number };
  syncRuns: unknown[];
  fingerprints: Fingerprints;
}

export async function captureEventState(stack: Stack): Promise<EventState> {
  const db = stack.db.db;
  const tenants = await db.selectFrom('tenants').selectAll().orderBy('tenant_key').execute();
  const audit = await db.selectFrom('tenant_audit').selectAll().orderBy('id').execute();
  const tickets = await db.selectFrom('app_tickets').select(['app_id', 'ticket_hash', 'received_at', 'event_id']).orderBy('app_id').execute();
  const tokens = await db
    .selectFrom('access_tokens')
    .select(['app_id', 'kind', 'tenant_key', 'token_hash', 'expires_at', 'refresh_at', 'minted_at', 'mint_count', 'last_error_code', 'last_error_at'])
    .orderBy('kind')
    .orderBy('tenant_key')
    .execute();
  const events = await db
    .selectFrom('lark_events')
    .select(['id', 'event_id', 'event_type', 'schema_version', 'tenant_key', 'status', 'attempts', 'last_error', 'received_at', 'processed_at'])
    .orderBy('id')
    .execute();
  // The id sequence, not max(id): finished jobs are deleted, and an empty table has no max.
  const jobs = await sql<{ ever: string | null; waiting: number }>`
    select pg_sequence_last_value(pg_get_serial_sequence('graphile_worker._private_jobs', 'id')::regclass)::text as ever,
           (select count(*)::int from graphile_worker._private_jobs) as waiting`.execute(db);
  const syncRuns = await db.selectFrom('sync_runs').select(['id', 'tenant_key', 'module', 'status']).orderBy('id').execute();
  // worker_processes holds the worker's heartbeat, which moves on its own; graphile-worker's queue
  // rows are collected by the worker's maintenance once empty (job-queues-gc.ts). A job queued by
  // mistake still shows: in the id sequence above and in _private_jobs.
  const tables = (await watchedTables(db)).filter((t) => t !== 'public.worker_processes' && t !== 'graphile_worker._private_job_queues');
  return {
    tenants: plain(tenants),
    audit: plain(audit),
    tickets: plain(tickets),
    tokens: plain(tokens),
    events: plain(events),
    jobs: { everQueued: Number(jobs.rows[0]?.ever ?? 0), waiting: jobs.rows[0]?.waiting ?? 0 },
    syncRuns: plain(syncRuns),
    fingerprints: await fingerprint(db, tables),
  };
}

/** Calls the simulator received, per path. */
export function upstreamCounts(stack: Stack): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of stack.sim.callLog) out[c.path] = (out[c.path] ?? 0) + 1;
  return out;
}

/** Sum of a Prometheus counter over all its label sets, from GET /metrics. */
export async function metricTotal(stack: Stack, name: string): Promise<number> {
  const text = await (await fetch(`${stack.larksync.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Waits until every stored event has been handled and no event job is queued or running. */
export async function eventsSettled(stack: Stack): Promise<boolean> {
  const r = await sql<{ pending: number; jobs: number }>`
    select (select count(*)::int from lark_events where status = 'pending') as pending,
           (select count(*)::int from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
             where t.identifier = any(${EVENT_TASKS}::text[])) as jobs`.execute(stack.db.db);
  return r.rows[0]?.pending === 0 && r.rows[0]?.jobs === 0;
}
