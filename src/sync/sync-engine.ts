import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import type { Services } from '../services.js';
import type { Pacer } from './pacer.js';
import { RunAbortedError, SyncError } from './sync-errors.js';
import { SyncLarkClient, defaultRetryPolicy, type RetryPolicy, type RunCounters } from './sync-lark-client.js';
import type { PageResult, PhaseState, SyncContext, SyncModuleDef } from './sync-module.js';
import type { StreamName } from './streams.js';
import type { SyncModuleName, SyncRunRow } from './sync.tables.js';
import { forgetSeenKeys, recordSeenKeys, replaceChildren, sweepDeletions, upsertRows } from './write-page.js';

export interface EngineOptions {
  /** A slice gives its worker slot back after this long, so one huge tenant cannot starve others. */
  sliceMs: number;
  /** How often a running slice proves it is alive. */
  heartbeatMs: number;
  retry: RetryPolicy;
}

export const defaultEngineOptions: EngineOptions = { sliceMs: 20_000, heartbeatMs: 5_000, retry: defaultRetryPolicy };

interface StoredPhaseState {
  s: PhaseState;
  done: boolean;
}

export type SliceOutcome = 'succeeded' | 'failed' | 'continue' | 'aborted';

/**
 * Runs sync runs in slices. Each page's rows and the phase checkpoint commit in one transaction,
 * under a check that this slice still holds the run's lease and the run is still running, so a
 * cancelled run or a slice whose run was resumed elsewhere (after a crash) commits nothing more.
 */
export class SyncEngine {
  constructor(
    private readonly services: Services,
    private readonly modules: Readonly<Record<SyncModuleName, SyncModuleDef>>,
    private readonly pacer: Pacer,
    private readonly options: EngineOptions = defaultEngineOptions,
  ) {}

  private get db(): Kysely<Database> {
    return this.services.db;
  }

  async runSlice(runId: string, lease: string): Promise<SliceOutcome> {
    const run = await this.claim(runId, lease);
    if (!run) return 'aborted';

    const counters: RunCounters = { upstreamCalls: 0, throttledWaits: 0 };
    const flushed: RunCounters = { upstreamCalls: 0, throttledWaits: 0 };
    let aborted: RunAbortedError | undefined;
    const checkAlive = async () => {
      if (aborted) throw aborted;
      const alive = await this.db
        .updateTable('sync_runs')
        .set({ heartbeat_at: sql<Date>`now()` })
        .where('id', '=', runId)
        .where('lease_id', '=', lease)
        .where('status', '=', 'running')
        .executeTakeFirst();
      if (Number(alive.numUpdatedRows) === 0) {
        aborted = new RunAbortedError((await this.isCancelled(runId)) ? 'cancelled' : 'lease_lost');
        throw aborted;
      }
    };
    const heartbeat = setInterval(() => void checkAlive().catch(() => undefined), this.options.heartbeatMs);
    heartbeat.unref();

    try {
      const ctx = await this.context(run, counters, checkAlive);
      const module = this.modules[run.module];
      module.precheck?.(ctx);
      const started = Date.now();
      for (const phase of module.phases) {
        const stored = await this.loadPhase(run, phase.name);
        if (stored?.runId === runId && stored.state.done) continue;
        let state: PhaseState = stored?.runId === runId ? stored.state.s : await phase.init(ctx, stored?.state.s);
        for (;;) {
          if (aborted) throw aborted;
          if (Date.now() - started > this.options.sliceMs) {
            await this.flushCounters(runId, lease, counters, flushed);
            return 'continue';
          }
          const page = await phase.readPage(ctx, state);
          await this.commitPage(run, lease, phase.name, phase.tracksDeletions ?? [], page, counters, flushed);
          state = page.state;
          if (page.done) break;
        }
      }
      await this.finish(runId, lease, 'succeeded', null);
      this.services.metrics.syncRuns.inc({ module: run.module, status: 'succeeded', error_class: '' });
      return 'succeeded';
    } catch (err) {
      if (err instanceof RunAbortedError) {
        if (err.reason === 'cancelled') await forgetSeenKeys(this.db, runId).catch(() => undefined);
        this.services.log.info({ runId, reason: err.reason, upstreamCalls: counters.upstreamCalls }, 'sync slice stopped');
        return 'aborted';
      }
      const failure =
        err instanceof SyncError ? err : new SyncError('internal_error', `unexpected error: ${(err as Error).message ?? String(err)}`);
      if (!(err instanceof SyncError)) this.services.log.error({ runId, errMessage: (err as Error).message }, 'sync run crashed');
      await this.flushCounters(runId, lease, counters, flushed).catch(() => undefined);
      await this.finish(runId, lease, 'failed', failure);
      this.services.metrics.syncRuns.inc({ module: run.module, status: 'failed', error_class: failure.errorClass });
      return 'failed';
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async claim(runId: string, lease: string): Promise<SyncRunRow | undefined> {
    return this.db
      .updateTable('sync_runs')
      .set({ status: 'running', started_at: sql<Date>`coalesce(started_at, now())`, heartbeat_at: sql<Date>`now()` })
      .where('id', '=', runId)
      .where('lease_id', '=', lease)
      .where('status', 'in', ['queued', 'running'])
      .returningAll()
      .executeTakeFirst();
  }

  private async isCancelled(runId: string): Promise<boolean> {
    const row = await this.db.selectFrom('sync_runs').select('status').where('id', '=', runId).executeTakeFirst();
    return row?.status === 'cancelled';
  }

  private async context(run: SyncRunRow, counters: RunCounters, checkAlive: () => Promise<void>): Promise<SyncContext> {
    const tenant = await this.services.tenants.get(run.tenant_key);
    if (!tenant || tenant.status !== 'active') {
      throw new SyncError('tenant_not_active', `tenant ${run.tenant_key} is not active`);
    }
    const connector = await this.db
      .selectFrom('connectors')
      .select(['config'])
      .where('tenant_key', '=', run.tenant_key)
      .where('module', '=', run.module)
      .executeTakeFirst();
    // The stored config was valid when saved; a module upgrade may have changed its schema since.
    let config: Record<string, unknown>;
    try {
      config = this.services.connectors.validate(run.module, connector?.config ?? {});
    } catch (err) {
      throw err instanceof AppError ? new SyncError('invalid_config', `connector config is invalid: ${err.message}`) : err;
    }
    // Resolved once per slice: every upstream call of the slice reuses it.
    const tokens = await this.services.tokens.forTenant(run.tenant_key).catch((err: unknown) => {
      // Uninstalled between the status check and this lookup: the same class as above.
      throw err instanceof AppError ? new SyncError('tenant_not_active', err.message) : err;
    });
    return {
      services: this.services,
      tenantKey: run.tenant_key,
      appKind: tokens.app.kind,
      runId: run.id,
      mode: run.mode,
      config,
      lark: new SyncLarkClient(this.services, tokens, this.pacer, counters, checkAlive, this.options.retry),
    };
  }

  private async loadPhase(run: SyncRunRow, phase: string): Promise<{ runId: string | null; state: StoredPhaseState } | undefined> {
    const row = await this.db
      .selectFrom('stream_states')
      .select(['state', 'run_id'])
      .where('tenant_key', '=', run.tenant_key)
      .where('module', '=', run.module)
      .where('stream', '=', phase)
      .executeTakeFirst();
    if (!row) return undefined;
    return { runId: row.run_id, state: row.state as unknown as StoredPhaseState };
  }

  /** Rows, deletions, checkpoint and run counters of one page: all or nothing. */
  private async commitPage(
    run: SyncRunRow,
    lease: string,
    phase: string,
    tracked: StreamName[],
    page: PageResult<PhaseState>,
    counters: RunCounters,
    flushed: RunCounters,
  ): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const current = await this.lockRun(trx, run.id, lease);
      const counts = { ...current.counts };
      for (const [stream, rows] of Object.entries(page.rows) as Array<[StreamName, NonNullable<PageResult<PhaseState>['rows'][StreamName]>]>) {
        await upsertRows(trx, stream, run.tenant_key, run.id, rows);
        if (tracked.includes(stream)) await recordSeenKeys(trx, run.id, stream, rows);
        counts[stream] = (counts[stream] ?? 0) + rows.length;
      }
      if (page.replaceChildren?.length) await replaceChildren(trx, run.tenant_key, page.replaceChildren);
      if (page.done) {
        for (const s of page.sweep ?? []) {
          const marked = await sweepDeletions(trx, run.tenant_key, run.id, s.stream, s.partition);
          if (marked < 0) {
            this.services.log.warn(
              { runId: run.id, stream: s.stream, partition: s.partition },
              'empty listing of a partition that has rows: nothing marked deleted',
            );
          }
        }
      }
      const stored: StoredPhaseState = { s: page.state, done: page.done };
      await trx
        .insertInto('stream_states')
        .values({ tenant_key: run.tenant_key, module: run.module, stream: phase, state: JSON.stringify(stored), run_id: run.id })
        .onConflict((oc) =>
          oc.columns(['tenant_key', 'module', 'stream']).doUpdateSet({
            state: JSON.stringify(stored),
            run_id: run.id,
            updated_at: sql<Date>`now()`,
          }),
        )
        .execute();
      await trx
        .updateTable('sync_runs')
        .set({
          counts: JSON.stringify(counts),
          pages: sql<number>`pages + 1`,
          upstream_calls: sql<number>`upstream_calls + ${counters.upstreamCalls - flushed.upstreamCalls}`,
          throttled_waits: sql<number>`throttled_waits + ${counters.throttledWaits - flushed.throttledWaits}`,
          heartbeat_at: sql<Date>`now()`,
        })
        .where('id', '=', run.id)
        .execute();
    });
    flushed.upstreamCalls = counters.upstreamCalls;
    flushed.throttledWaits = counters.throttledWaits;
    for (const [stream, rows] of Object.entries(page.rows)) {
      if (rows?.length) this.services.metrics.syncRows.inc({ stream }, rows.length);
    }
  }

  private async lockRun(trx: Transaction<Database>, runId: string, lease: string) {
    const current = await trx
      .selectFrom('sync_runs')
      .select(['counts', 'status'])
      .where('id', '=', runId)
      .where('lease_id', '=', lease)
      .forUpdate()
      .executeTakeFirst();
    if (!current || current.status !== 'running') {
      throw new RunAbortedError(current?.status === 'cancelled' || !current ? 'cancelled' : 'lease_lost');
    }
    return current;
  }

  private async flushCounters(runId: string, lease: string, counters: RunCounters, flushed: RunCounters): Promise<void> {
    await this.db
      .updateTable('sync_runs')
      .set({
        upstream_calls: sql<number>`upstream_calls + ${counters.upstreamCalls - flushed.upstreamCalls}`,
        throttled_waits: sql<number>`throttled_waits + ${counters.throttledWaits - flushed.throttledWaits}`,
      })
      .where('id', '=', runId)
      .where('lease_id', '=', lease)
      .execute();
    flushed.upstreamCalls = counters.upstreamCalls;
    flushed.throttledWaits = counters.throttledWaits;
  }

  private async finish(runId: string, lease: string, status: 'succeeded' | 'failed', error: SyncError | null): Promise<void> {
    await forgetSeenKeys(this.db, runId);
    await this.db
      .updateTable('sync_runs')
      .set({
        status,
        finished_at: sql<Date>`now()`,
        error_class: error?.errorClass ?? null,
        error_message: error ? error.message.slice(0, 1000) : null,
      })
      .where('id', '=', runId)
      .where('lease_id', '=', lease)
      .where('status', '=', 'running')
      .execute();
  }
}
