import { sql, type Kysely } from 'kysely';
import type { Database } from '../../db/database.js';
import type { RunCounters } from '../sync-lark-client.js';
import { RunAbortedError, type SyncError } from '../sync-errors.js';
import type { RunStatus, SyncRunRow } from '../sync.tables.js';
import { toRunView } from '../sync.service.js';
import { emitWebhookEvent } from '../../webhooks/emit.js';

/**
 * A slice's hold on its run, as Temporal treats an activity's heartbeat: the run row says which
 * lease may write (`lease_id`), the slice proves it is alive every few seconds, and a cancel or a
 * takeover (a silent slice resumed elsewhere) reaches the slice through the same beat. Every write
 * the slice makes is guarded by the lease; finishing is too, and so is forgetting the run's seen
 * keys, which a stale slice must never take from the slice that replaced it.
 */
export class RunLease {
  /** Upstream calls made by this slice so far; `flushed` is the part already on the run row. */
  readonly counters: RunCounters = { upstreamCalls: 0, throttledWaits: 0 };
  readonly flushed: RunCounters = { upstreamCalls: 0, throttledWaits: 0 };
  private aborted: RunAbortedError | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly db: Kysely<Database>,
    readonly run: SyncRunRow,
    readonly id: string,
  ) {}

  /** Marks the run running under this lease; undefined when the lease is gone or the run is over. */
  static async claim(db: Kysely<Database>, runId: string, leaseId: string): Promise<RunLease | undefined> {
    const run = await db
      .updateTable('sync_runs')
      .set({ status: 'running', started_at: sql<Date>`coalesce(started_at, now())`, heartbeat_at: sql<Date>`now()` })
      .where('id', '=', runId)
      .where('lease_id', '=', leaseId)
      .where('status', 'in', ['queued', 'running'])
      .returningAll()
      .executeTakeFirst();
    return run ? new RunLease(db, run, leaseId) : undefined;
  }

  startHeartbeat(everyMs: number): void {
    this.timer = setInterval(() => void this.checkAlive().catch(() => undefined), everyMs);
    this.timer.unref();
  }

  stopHeartbeat(): void {
    clearInterval(this.timer);
  }

  /** Beats; throws RunAbortedError once the run was cancelled or its lease taken over. */
  async checkAlive(): Promise<void> {
    this.throwIfAborted();
    const alive = await this.db
      .updateTable('sync_runs')
      .set({ heartbeat_at: sql<Date>`now()` })
      .where('id', '=', this.run.id)
      .where('lease_id', '=', this.id)
      .where('status', '=', 'running')
      .executeTakeFirst();
    if (Number(alive.numUpdatedRows) === 0) {
      this.aborted = new RunAbortedError((await this.isCancelled()) ? 'cancelled' : 'lease_lost');
      throw this.aborted;
    }
  }

  /** Cheap: what the last beat found. */
  throwIfAborted(): void {
    if (this.aborted) throw this.aborted;
  }

  async flushCounters(): Promise<void> {
    const upto = { ...this.counters };
    await this.db
      .updateTable('sync_runs')
      .set({
        upstream_calls: sql<number>`upstream_calls + ${upto.upstreamCalls - this.flushed.upstreamCalls}`,
        throttled_waits: sql<number>`throttled_waits + ${upto.throttledWaits - this.flushed.throttledWaits}`,
      })
      .where('id', '=', this.run.id)
      .where('lease_id', '=', this.id)
      .execute();
    Object.assign(this.flushed, upto);
  }

  /**
   * Gives the run back until `resumeAt` (a throttle longer than the slice had left): queued, so
   * the stale-run sweep leaves it alone and the API shows it waiting, and claimed again by the
   * slice queued for then.
   */
  async defer(): Promise<void> {
    await this.db
      .updateTable('sync_runs')
      .set({ status: 'queued', heartbeat_at: null })
      .where('id', '=', this.run.id)
      .where('lease_id', '=', this.id)
      .where('status', '=', 'running')
      .execute();
  }

  /**
   * Ends the run, only while this slice still holds it: `succeeded` becomes `partial` when some
   * items failed. The run's seen keys go in the same statement, and only if the run was this
   * slice's to end (review M4: a stale slice finishing would otherwise delete the keys of the
   * slice that took over, whose sweep would then mark everything seen before as deleted).
   * Returns the status set, or undefined when the run was no longer this slice's.
   */
  async finish(status: 'succeeded' | 'failed', error: SyncError | null): Promise<RunStatus | undefined> {
    // One transaction with the webhook outbox: sync.finished commits with the run's end or not at all.
    return this.db.transaction().execute(async (trx) => {
      const res = await sql<SyncRunRow>`
        with done as (
          update sync_runs set
            status = case when ${status}::text = 'succeeded' and jsonb_array_length(item_errors) > 0 then 'partial' else ${status}::text end,
            finished_at = now(),
            error_class = ${error?.errorClass ?? null},
            error_message = ${error ? error.message.slice(0, 1000) : null}
          where id = ${this.run.id} and lease_id = ${this.id} and status = 'running'
          returning *
        ),
        forgotten as (delete from sync_seen_pages where run_id in (select id from done))
        select * from done`.execute(trx);
      const run = res.rows[0];
      if (run) await emitWebhookEvent(trx, { type: 'sync.finished', tenantKey: run.tenant_key, data: { run: toRunView(run) } });
      return run?.status;
    });
  }

  /** A cancelled run never resumes: its deletion bookkeeping goes. A lost lease keeps it for the new holder. */
  async forgetIfCancelled(): Promise<void> {
    await sql`
      delete from sync_seen_pages
       where run_id = ${this.run.id} and exists (select 1 from sync_runs where id = ${this.run.id} and status = 'cancelled')`.execute(this.db);
  }

  private async isCancelled(): Promise<boolean> {
    const row = await this.db.selectFrom('sync_runs').select('status').where('id', '=', this.run.id).executeTakeFirst();
    return row?.status === 'cancelled';
  }
}
