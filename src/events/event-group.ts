import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/database.js';
import { marksWrite, type PreparedEventChange } from '../sync/event-apply.js';
import { emitWebhookEvent } from '../webhooks/emit.js';

export type GroupOutcome = 'processed' | 'ignored';

/**
 * One tenant's change events of a drain, committed together. Each event still makes its own
 * re-read (in order, each drawing its read number before its call), but what they share is looked
 * up once (the tenant, its connector, its tokens), and their rows, event marks, "handled" marks
 * and one `records.changed` go in ONE transaction. Per event that was a dozen round trips to
 * Postgres and a transaction of its own; under a burst the pool queue, not Lark, set the pace.
 *
 * All or nothing: a crash (or a failed commit) before the commit leaves every event of the group
 * pending for the drain's retry, whose re-reads then find the rows as they are. An event whose
 * handler throws is not part of the group: it is failed and retried on its own, as before.
 */
export class EventGroup {
  private readonly changes: PreparedEventChange[] = [];
  private readonly after: Array<() => Promise<unknown>> = [];
  private readonly outcomes = new Map<string, GroupOutcome>();
  /** object key -> the newest event mark, and the latest read start, of a change waiting for the commit */
  private readonly marks = new Map<string, { mark: number; readAt: number }>();
  readonly startedAt = performance.now();

  constructor(
    readonly tenantKey: string,
    /** shared by the groups a drain commits one after another for the tenant */
    private readonly memo = new Map<string, Promise<unknown>>(),
  ) {}

  /** The group that follows this one once it is committed: lookups carry over. */
  next(): EventGroup {
    return new EventGroup(this.tenantKey, this.memo);
  }

  /** Events settled so far. */
  get size(): number {
    return this.outcomes.size;
  }

  /** `compute` once per group for `key`; a failure is not kept (the next event tries again). */
  once<T>(key: string, compute: () => Promise<T>): Promise<T> {
    let p = this.memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = compute();
      this.memo.set(key, p);
      p.catch(() => this.memo.delete(key));
    }
    return p;
  }

  /** A handler's change, written at the commit in the order handlers produced them. */
  add(change: PreparedEventChange): void {
    this.changes.push(change);
    const { marks, readAt } = change;
    for (const key of marks?.keys ?? []) {
      const had = this.marks.get(key);
      this.marks.set(key, {
        mark: Math.max(had?.mark ?? Number.NEGATIVE_INFINITY, marks!.mark),
        readAt: Math.max(had?.readAt ?? Number.NEGATIVE_INFINITY, readAt?.getTime() ?? Number.NEGATIVE_INFINITY),
      });
    }
  }

  /**
   * `keys` less those a change waiting in this group already applied at a newer mark: what the
   * database says is fresh may be stale against an event earlier in the group (see freshObjectsForReads).
   */
  fresh(keys: string[], mark: number, receivedAt?: Date): string[] {
    return keys.filter((k) => {
      const had = this.marks.get(k);
      return !had || !(had.mark > mark || (receivedAt !== undefined && had.readAt > receivedAt.getTime()));
    });
  }

  /** The statement that records the events' outcomes ('processed', 'ignored'); undefined when there are none. */
  private outcomesWrite(): RawBuilder<unknown> | undefined {
    if (this.outcomes.size === 0) return undefined;
    const ids = [...this.outcomes.keys()];
    const statuses = [...this.outcomes.values()];
    return sql`update lark_events e set status = o.status, processed_at = now(), last_error = null, attempts = e.attempts + 1
                from unnest(${ids}::bigint[], ${statuses}::text[]) as o(id, status)
               where e.id = o.id`;
  }

  /** Runs after the commit (telling sinks that rows changed must not beat the rows). */
  afterCommit(fn: () => Promise<unknown>): void {
    this.after.push(fn);
  }

  /** The outcome of stored events (lark_events ids): marked in the commit. */
  settle(rowIds: readonly string[], outcome: GroupOutcome): void {
    for (const id of rowIds) this.outcomes.set(id, outcome);
  }

  async commit(db: Kysely<Database>): Promise<void> {
    if (this.outcomes.size === 0 && this.changes.length === 0) return;
    // Events that changed nothing (stale, out of scope) only need their outcomes: one statement,
    // no transaction around it.
    if (this.changes.length === 0) {
      await this.outcomesWrite()?.execute(db);
      return;
    }
    await db.transaction().execute(async (trx) => {
      const touched = new Set<string>();
      for (const change of this.changes) {
        await change.write(trx);
        for (const s of change.touched) touched.add(s);
      }
      // Every change's marks (the newest of each object, kept by add()) and every event's outcome
      // are written in the statement that announces the changes: one round trip where three were.
      // Neither table is read by the announcement.
      const marks = marksWrite(
        this.tenantKey,
        [...this.marks].map(([key, m]) => ({ key, mark: m.mark, readAt: Number.isFinite(m.readAt) ? new Date(m.readAt) : null })),
      );
      await emitWebhookEvent(trx, { type: 'records.changed', tenantKey: this.tenantKey, data: { streams: [...touched] } }, [marks, this.outcomesWrite()]);
    });
    // The rows are committed: a failure here (queueing sink work) must not fail the drain, whose
    // events are handled; the sinks' own schedule picks the work up anyway.
    for (const fn of this.after) await fn().catch(() => undefined);
  }
}
