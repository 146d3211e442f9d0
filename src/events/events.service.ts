import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import type { Sealer } from '../crypto/sealer.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ParsedPush } from './parse-push.js';
import { GroupCommitter } from '../db/group-commit.js';
import { IngestLog } from './ingest-log.js';
import {
  countFailedEvents,
  eventContext,
  failAndScheduleRetry,
  findEvent,
  markEvent,
  orphanedFailedEvents,
  pendingEventIds,
  requeueFailedEvent,
  sleepShard,
  storeEventBatch,
  wakeShard,
  type NewStoredEvent,
} from './events.repository.js';
import type { LarkEventRow } from './events.table.js';
import type { EventMerger } from '../sync/sync-module.js';
import { CHANGE_EVENT_TYPES, eventHandlers, eventMergers } from './dispatch.js';
import { EventGroup } from './event-group.js';
import type { EventHandler, HandlerDeps } from './handlers/types.js';
import { appliesFor, pushAppOf } from './push-apps.js';

type ParsedEvent = Extract<ParsedPush, { kind: 'event' }>;

/** graphile-worker refuses queue names over 128 characters (add_job raises). */
const MAX_QUEUE_NAME = 128;

/** The queue of an event's own retry job: one tenant's jobs run one at a time, in order. */
export function queueFor(e: { eventType: string; tenantKey: string | null; appId: string | null }): string {
  const name = e.tenantKey ? `tenant:${e.tenantKey}` : `app:${e.appId ?? 'unknown'}`;
  if (name.length <= MAX_QUEUE_NAME) return name;
  // An over-long key from the push would make add_job raise, and the failed event would never be
  // retried. A digest keeps one queue per key.
  return `${e.tenantKey ? 'tenant' : 'app'}#${createHash('sha256').update(name).digest('hex')}`;
}

/**
 * Pushes stored per transaction at most, and transactions in flight at once. One in flight makes
 * the batches as large as the load, which spreads each statement's fixed cost thin: with two,
 * batches were half as large, Postgres spent more per push and the endpoint acknowledged 10-15%
 * fewer pushes a second at saturation (`npm run bench -- events`).
 */
const GROUP_COMMIT = { maxBatch: 256, maxInFlight: 1 };

/** Events a drain job handles at most (over its reads); a shard with more queues a fresh job, behind other work. */
const DRAIN_LIMIT = 500;

/**
 * How long a drain job takes up further events before it hands the rest to a fresh job queued
 * behind other urgent work. Drains share the urgent runner's slots with the minute's token
 * refresh; under a flood of lifecycle pushes (handled one by one) a 500-event drain held a slot
 * for tens of seconds, and the refresh waited behind four of them (`npm run bench -- contention`).
 */
export const DRAIN_BUDGET_MS = 2_000;

/**
 * Tenants whose events one drain handles at once. A change event waits mostly on Lark (one paced
 * re-read) and on one commit; handled one after another a shard did about 3 a second, far behind
 * Lark's pushes across many tenants.
 */
const TENANTS_AT_ONCE = 8;

/** First retry of a failed event; graphile-worker's backoff spaces the later ones. */
const RETRY_AFTER_SECONDS = 10;

/** Orphaned failed events the minute sweep re-queues at most per run. */
const REQUEUE_LIMIT = 500;

/**
 * The type label of an event metric: only types larksync handles get their own series, so a
 * sender cannot create unbounded metric series (nor make a log line arbitrarily wide).
 */
const typeLabel = (eventType: string) => (Object.hasOwn(eventHandlers, eventType) ? eventType : 'other');

export class EventsService {
  private readonly committer: GroupCommitter<NewStoredEvent, 'stored' | 'duplicate'>;
  private readonly ingestLog: IngestLog;

  constructor(
    private readonly db: Kysely<Database>,
    pool: pg.Pool,
    private readonly sealer: Sealer,
    private readonly metrics: Metrics,
    log: Logger,
  ) {
    this.ingestLog = new IngestLog(log);
    metrics.watchFailedEvents(() => countFailedEvents(db));
    this.committer = new GroupCommitter(async (batch) => {
      const started = performance.now();
      const outcomes = await storeEventBatch(pool, batch);
      this.countBatch(batch, outcomes, performance.now() - started);
      return outcomes;
    }, GROUP_COMMIT);
  }

  /**
   * Metrics and the log line of a committed batch, counted once per batch rather than per push
   * (a labelled counter increment hashes its labels each time).
   */
  private countBatch(batch: NewStoredEvent[], outcomes: Array<'stored' | 'duplicate'>, commitMs: number): void {
    const pushes = new Map<string, number>();
    const stored = new Map<string, number>();
    batch.forEach((e, i) => {
      const type = typeLabel(e.eventType);
      pushes.set(type, (pushes.get(type) ?? 0) + 1);
      if (outcomes[i] === 'stored') stored.set(type, (stored.get(type) ?? 0) + 1);
    });
    let storedCount = 0;
    for (const [type, n] of stored) {
      this.metrics.eventsReceived.inc({ type }, n);
      storedCount += n;
    }
    if (batch.length > storedCount) this.metrics.eventsDeduped.inc(batch.length - storedCount);
    this.metrics.eventBatchSize.observe(batch.length);
    this.ingestLog.add(pushes, storedCount, commitMs);
  }

  /** Writes the pending summary of stored pushes (at shutdown, after the last request). */
  flushLog(): void {
    this.ingestLog.flush();
  }

  /**
   * The request path: seal, then store and queue with the pushes arriving meanwhile (group
   * commit). It resolves once this push's row is committed. No Lark calls here, so the 3 s
   * budget is ours.
   */
  async ingest(e: ParsedEvent): Promise<'stored' | 'duplicate'> {
    return this.committer.submit({
      eventId: e.eventId,
      appId: e.appId,
      schemaVersion: e.schemaVersion,
      eventType: e.eventType,
      tenantKey: e.tenantKey,
      payloadSealed: this.sealer.seal(e.plaintext, eventContext(e.eventId)),
    });
  }

  /**
   * Applies stored app_ticket pushes of this app that are still pending, oldest first, for a
   * caller that needs the ticket before the push's own job has run. It does not mark them: their
   * job, which may be running at this moment, marks each once (storing a ticket twice is harmless,
   * counting its processing twice is not).
   */
  async applyPendingTickets(services: HandlerDeps, appId: string): Promise<void> {
    const pending = await this.db
      .selectFrom('lark_events')
      .selectAll()
      .where('event_type', '=', 'app_ticket')
      .where('app_id', '=', appId)
      .where('status', '=', 'pending')
      .orderBy('id')
      .limit(5)
      .execute();
    // A push that fails here fails in its job too, which records why.
    for (const row of pending) await this.apply(services, row).catch(() => undefined);
  }

  /**
   * A shard's drain job: its pending events in id order, read again after each batch, so events
   * stored while it handles earlier ones are handled by this same job. The shard stays awake
   * meanwhile (a batch storing into it queues no job) and is put to sleep once a read comes back
   * empty; a last read follows, because putting it to sleep waits for any batch storing into it to
   * commit. So every event stored before the sleep is read here, and every later one wakes the
   * shard and queues the next job.
   *
   * Why not sleep first and leave later events to the job they queue (as drains did): that job
   * waits behind this one in the shard's queue, and graphile-worker takes it only at an idle
   * runner's next poll (2 s): the queue is still locked when the job's insert is announced, and
   * nothing is announced when a job completes. At the end of a burst every shard's last events
   * waited those 2 s (`npm run bench -- realtime`, 50 changes/s).
   *
   * The job hands the rest to a fresh job, queued behind other work, once it has used its budget
   * or DRAIN_LIMIT, or when `othersWaiting` says another job wants the slot (asked only before a
   * further read with events to handle): reading on while other shards' jobs waited held them up.
   */
  async drainShard(
    services: HandlerDeps,
    shard: number,
    opts: { budgetMs?: number; othersWaiting?: () => Promise<boolean> } = {},
  ): Promise<void> {
    const deadline = performance.now() + (opts.budgetMs ?? DRAIN_BUDGET_MS);
    let left = DRAIN_LIMIT;
    for (let first = true; ; first = false) {
      let ids = await pendingEventIds(this.db, shard, left);
      if (ids.length === 0) {
        await sleepShard(this.db, shard);
        ids = await pendingEventIds(this.db, shard, left);
        if (ids.length === 0) return;
      }
      if (!first && (performance.now() >= deadline || (await opts.othersWaiting?.()))) break;
      const handled = await this.processBatch(services, ids, deadline);
      left -= handled;
      if (handled < ids.length || left <= 0) break;
    }
    await wakeShard(this.db, shard, { force: true });
  }

  /**
   * Events in order: a drain job's, or those listed by a batch job that an earlier version queued.
   * One that fails is marked failed and handed to a job of its own in the same statement, retried
   * with backoff in its tenant's queue, and the rest go on. Safe to run again: events already
   * handled are skipped. Anything else going wrong (the database) fails the whole job, whose
   * retry finds the unhandled events still pending.
   *
   * Past `deadline` (performance.now()) no further event is taken up: returns how many of `ids`,
   * a prefix, were handled; the rest stay pending, in order, for the next job. At least one is.
   */
  async processBatch(services: HandlerDeps, ids: string[], deadline = Number.POSITIVE_INFINITY): Promise<number> {
    const rows = await eventRows(this.db, ids);
    // Change events of different tenants go at once; each tenant's stay in order (a stale one
    // still finds the newer one applied and makes no call) and are committed as one group. Any
    // other event (lifecycle, tickets) waits for what came before it and holds back what comes
    // after it, as it always did.
    let run = new Map<string, LarkEventRow[]>();
    const flush = async () => {
      await eachLimit([...run], TENANTS_AT_ONCE, ([tenant, list]) => this.processGroup(services, tenant, list));
      run = new Map();
    };
    for (const [i, id] of ids.entries()) {
      const row = rows.get(id);
      if (row?.tenant_key && CHANGE_EVENT_TYPES.has(row.event_type)) {
        const list = run.get(row.tenant_key) ?? [];
        list.push(row);
        run.set(row.tenant_key, list);
        continue;
      }
      await flush();
      if (i > 0 && performance.now() >= deadline) return i;
      await this.process(services, id, { scheduleRetry: true });
    }
    await flush();
    return ids.length;
  }

  /**
   * One tenant's change events of a drain, in order, committed together (event-group.ts).
   * Consecutive events a module can fold (Base record changes of one table) are applied as one.
   * An event whose handler throws is failed and retried on its own; the others still commit.
   */
  private async processGroup(services: HandlerDeps, tenantKey: string, rows: LarkEventRow[]): Promise<void> {
    let group = new EventGroup(tenantKey);
    const settled: Array<{ type: string; outcome: 'processed' | 'ignored'; n: number }> = [];
    const queue = rows.filter((r) => r.status === 'pending');
    while (queue.length > 0) {
      const first = queue.shift() as LarkEventRow;
      let opened: OpenedEvent;
      try {
        opened = this.open(first);
      } catch (err) {
        await this.failForRetry(services, first, err);
        continue;
      }
      // Later events of the tenant that fold into this one are applied with it. Moving them ahead
      // of events of other types is safe: those name other objects (a user, a table's fields),
      // and every object keeps its own marks and read order.
      const members = [first];
      const merge = eventMergers.get(first.event_type);
      for (let j = 0; merge && opened.handler && j < queue.length && members.length < MAX_FOLDED; ) {
        const next = queue[j] as LarkEventRow;
        const fold = next.event_type === first.event_type && next.app_id === first.app_id ? this.tryFold(merge, opened, next) : undefined;
        if (!fold) {
          j += 1;
          continue;
        }
        opened = fold;
        members.push(next);
        queue.splice(j, 1);
      }
      try {
        // A fold is as new as its newest member: a read must have started after that one arrived.
        const receivedAt = new Date(Math.max(...members.map((m) => m.received_at.getTime())));
        const outcome = await this.run(services, opened, { ...first, received_at: receivedAt }, group);
        group.settle(
          members.map((m) => m.id),
          outcome,
        );
        settled.push({ type: typeLabel(first.event_type), outcome, n: members.length });
      } catch (err) {
        for (const m of members) await this.failForRetry(services, m, err);
      }
      // A long run of one tenant's events is committed in parts: the first of them must not wait
      // for the last one's re-read to become visible.
      if (group.size >= GROUP_COMMIT_EVENTS || performance.now() - group.startedAt >= GROUP_COMMIT_MS) {
        await group.commit(this.db);
        this.countSettled(settled.splice(0));
        group = group.next();
      }
    }
    await group.commit(this.db);
    this.countSettled(settled);
  }

  /** `opened` with `next` folded in, or undefined when they don't fold (or `next` does not open: it fails on its own turn). */
  private tryFold(merge: EventMerger, opened: OpenedEvent, next: LarkEventRow): OpenedEvent | undefined {
    let nextOpened: OpenedEvent;
    try {
      nextOpened = this.open(next);
    } catch {
      return undefined;
    }
    const folded = nextOpened.handler ? merge(opened.event, nextOpened.event) : undefined;
    return folded ? { ...nextOpened, event: folded } : undefined;
  }

  private countSettled(settled: Array<{ type: string; outcome: 'processed' | 'ignored'; n: number }>): void {
    for (const s of settled) this.metrics.eventsProcessed.inc({ type: s.type, outcome: s.outcome }, s.n);
  }

  /** A drain's event whose handling threw: marked failed, its own retry job queued (backoff). */
  private async failForRetry(services: HandlerDeps, row: LarkEventRow, err: unknown): Promise<void> {
    const reason = failureReason(err);
    this.metrics.eventsProcessed.inc({ type: typeLabel(row.event_type), outcome: 'failed' });
    await failAndScheduleRetry(this.db, row.id, reason, queueFor({ eventType: row.event_type, tenantKey: row.tenant_key, appId: row.app_id }), RETRY_AFTER_SECONDS);
    services.log.warn({ eventId: row.event_id, eventType: typeLabel(row.event_type), errMessage: reason }, 'lark event failed: retrying it on its own');
  }

  /**
   * Re-read the stored row, open it, apply it and mark it. Safe to run more than once. A failure
   * either schedules the event's own retry job (`scheduleRetry`, the drain path; answers
   * 'failed') or marks it failed and throws, so that the retry job running it is retried.
   */
  async process(
    services: HandlerDeps,
    id: string,
    opts: { scheduleRetry?: boolean } = {},
  ): Promise<'processed' | 'ignored' | 'failed' | 'missing'> {
    const row = await findEvent(this.db, id);
    if (!row) return 'missing';
    if (row.status === 'processed' || row.status === 'ignored') return row.status;
    let outcome: 'processed' | 'ignored';
    try {
      outcome = await this.apply(services, row);
    } catch (err) {
      if (opts.scheduleRetry) {
        await this.failForRetry(services, row, err);
        return 'failed';
      }
      this.metrics.eventsProcessed.inc({ type: typeLabel(row.event_type), outcome: 'failed' });
      await markEvent(this.db, id, 'failed', failureReason(err));
      throw err;
    }
    await markEvent(this.db, id, outcome, null);
    this.metrics.eventsProcessed.inc({ type: typeLabel(row.event_type), outcome });
    return outcome;
  }

  /**
   * The minute sweep's safety net: failed events with attempts left whose retry job is gone get
   * a new one. Returns how many were queued.
   */
  async requeueOrphanedFailures(): Promise<number> {
    let queued = 0;
    for (const e of await orphanedFailedEvents(this.db, REQUEUE_LIMIT)) {
      if (await requeueFailedEvent(this.db, e.id, queueFor({ eventType: e.event_type, tenantKey: e.tenant_key, appId: e.app_id }))) queued += 1;
    }
    return queued;
  }

  /** Opens a stored push and runs its handler; throws what the handler throws. */
  private async apply(services: HandlerDeps, row: LarkEventRow): Promise<'processed' | 'ignored'> {
    return this.run(services, this.open(row), row);
  }

  /**
   * A stored push opened: its handler (none: not applied) and its event. A row that no longer
   * opens (e.g. its sealing key was dropped) throws here, so it is marked failed with a reason
   * rather than sitting pending while its job retries.
   */
  private open(row: LarkEventRow): OpenedEvent {
    // Own keys only: a pushed type named like an Object.prototype member must not find a "handler".
    const handler = Object.hasOwn(eventHandlers, row.event_type) ? eventHandlers[row.event_type] : undefined;
    const body = JSON.parse(this.sealer.open(row.payload_sealed, eventContext(row.event_id))) as Record<string, unknown>;
    const envelope = row.schema_version === 'v2' ? ((body.header ?? {}) as Record<string, unknown>) : body;
    const event = (body.event ?? {}) as Record<string, unknown>;
    return { handler, event, pushedAt: pushTime(row.schema_version, envelope) ?? row.received_at };
  }

  private async run(services: HandlerDeps, opened: OpenedEvent, row: LarkEventRow, group?: EventGroup): Promise<'processed' | 'ignored'> {
    if (!opened.handler) return 'ignored';
    // Pushes of the store app, and of a registered custom app for its own tenant, are applied;
    // those for another app id (a misrouted console setting) are kept but not applied. A custom
    // app costs two lookups: once per drain group, not per event.
    const lookup = () => pushAppOf(this.db, row.app_id, services.config.storeApp?.appId);
    const app = await (group ? group.once(`push-app:${row.app_id ?? ''}`, lookup) : lookup());
    if (!appliesFor(app, { eventType: row.event_type, tenantKey: row.tenant_key }, CHANGE_EVENT_TYPES)) return 'ignored';
    return opened.handler(opened.event, {
      services,
      eventId: row.event_id,
      rowId: row.id,
      appId: row.app_id,
      tenantKey: row.tenant_key,
      pushedAt: opened.pushedAt,
      receivedAt: row.received_at,
      ...(group ? { group } : {}),
    });
  }
}

interface OpenedEvent {
  handler: EventHandler | undefined;
  event: Record<string, unknown>;
  pushedAt: Date;
}

/**
 * A tenant's group is committed once it holds this many events or is this old: a commit per event
 * costs a transaction each, one per drain would hold the first event back until the last is read.
 */
const GROUP_COMMIT_EVENTS = 25;
const GROUP_COMMIT_MS = 250;

/** Consecutive events folded into one at most (a Base table's: up to 50 record changes). */
const MAX_FOLDED = 50;

/** What a failed event's row keeps of the error. */
const failureReason = (err: unknown) => (err as Error).message.slice(0, 500);

function pushTime(version: 'v1' | 'v2', envelope: Record<string, unknown>): Date | undefined {
  const raw = version === 'v1' ? Number(envelope.ts) * 1000 : Number(envelope.create_time);
  return Number.isFinite(raw) && raw > 0 ? new Date(raw) : undefined;
}

/** The stored rows of a drain's events, by id. */
async function eventRows(db: Kysely<Database>, ids: string[]): Promise<Map<string, LarkEventRow>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('lark_events').selectAll().where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r]));
}

/** Runs `fn` over `items`, at most `limit` at once; waits for all, then throws the first error. */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.err;
}
