import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import type { Services } from '../services.js';
import type { Pacer } from './pacer.js';
import { RunAbortedError, SyncError } from './sync-errors.js';
import { SyncLarkClient, defaultRetryPolicy, type RetryPolicy, type RunCounters } from './sync-lark-client.js';
import type { PageResult, PhaseState, SyncContext, SyncModuleDef, SyncPhase } from './sync-module.js';
import type { StreamName, StreamRow } from './streams.js';
import type { SyncModuleName, SyncRunRow } from './sync.tables.js';
import { forgetSeenKeys, prepareRows, replaceChildren, sweepDeletions, writeRows, type PreparedRows } from './write-page.js';

export interface EngineOptions {
  /** A slice gives its worker slot back after this long, so one huge tenant cannot starve others. */
  sliceMs: number;
  /** How often a running slice proves it is alive. */
  heartbeatMs: number;
  retry: RetryPolicy;
  /**
   * Pages a phase that allows it may have read (and prepared) and not yet started to commit,
   * besides the one being fetched and the two whose transactions may be open: reads run back to
   * back at the pace the rate limit allows while earlier pages commit. A crash loses at most
   * readAhead + 3 pages read, which whoever resumes reads again. 0 reads and commits in turn.
   */
  readAhead: number;
}

export const defaultEngineOptions: EngineOptions = { sliceMs: 20_000, heartbeatMs: 5_000, retry: defaultRetryPolicy, readAhead: 1 };

interface StoredPhaseState {
  s: PhaseState;
  done: boolean;
}

export type SliceOutcome = 'succeeded' | 'failed' | 'continue' | 'aborted';

/** A page as read, with everything the commit needs computed up front (off the commit's path). */
interface ReadyPage {
  /** the page without its rows, which live on only as `writes` */
  page: Omit<PageResult<PhaseState>, 'rows'>;
  writes: PreparedRows[];
  /** rows per stream, as the run's counts add them up */
  counts: Record<string, number>;
  /** the phase state after this page, serialised when the page was read */
  checkpoint: string;
}

type Read = { ok: true; ready: ReadyPage } | { ok: false; error: unknown };

/** A page's transaction still open, and the keys it writes (`stream NUL key`). */
interface InFlight {
  done: Promise<void>;
  keys: Set<string>;
}

/**
 * A chain of page reads, each from the state the previous one returned, running ahead of the
 * committer: at most `depth` pages read and not yet taken, plus the one being fetched. The chain
 * goes on while `readOn` says the page after the one just fetched may be read before it is
 * committed, and otherwise stops after that page; the committer starts it again from the
 * committed state. The next fetch goes out before a page is hashed and serialised, so that work
 * overlaps the wait for the next page (and the rate limit's pace is not stretched by it). A failed
 * read is handed to the committer in its place, after the pages before it.
 */
class PageReader {
  private readonly pages: Read[] = [];
  private running = false;
  private stopped = false;
  private wakeTaker: (() => void) | undefined;
  private wakeReader: (() => void) | undefined;

  constructor(
    private readonly fetch: (state: PhaseState) => Promise<PageResult<PhaseState>>,
    private readonly prepare: (page: PageResult<PhaseState>) => Promise<ReadyPage>,
    private readonly readOn: (page: PageResult<PhaseState>) => boolean,
    private readonly depth: number,
  ) {}

  /** Nothing being read and nothing left to take. */
  get idle(): boolean {
    return !this.running && this.pages.length === 0;
  }

  start(from: PhaseState): void {
    this.running = true;
    void this.run(from);
  }

  /** The next page in order; undefined once the chain has stopped with nothing left. */
  async take(): Promise<ReadyPage | undefined> {
    for (;;) {
      const next = this.pages.shift();
      if (next) {
        this.wake('reader');
        if (!next.ok) throw next.error;
        return next.ready;
      }
      if (!this.running) return undefined;
      await new Promise<void>((resolve) => (this.wakeTaker = resolve));
    }
  }

  /** No further read starts; one in flight finishes unseen. */
  stop(): void {
    this.stopped = true;
    this.pages.length = 0;
    this.wake('reader');
  }

  private async run(from: PhaseState): Promise<void> {
    let fetching: Promise<PageResult<PhaseState>> | undefined = this.fetch(from);
    try {
      while (fetching) {
        const page: PageResult<PhaseState> = await fetching;
        fetching = undefined;
        if (this.stopped) return;
        const onward = this.readOn(page);
        if (onward && this.pages.length < this.depth) fetching = this.fetch(page.state);
        let ready: ReadyPage;
        try {
          ready = await this.prepare(page);
        } catch (error) {
          // Nothing after a page that cannot be stored is used.
          void fetching?.catch(() => undefined);
          throw error;
        }
        this.pages.push({ ok: true, ready });
        this.wake('taker');
        if (!onward || fetching) continue;
        while (this.pages.length >= this.depth && !this.stopped) await new Promise<void>((resolve) => (this.wakeReader = resolve));
        // Asked again after the wait: the slice's time may have run out meanwhile.
        if (!this.stopped && this.readOn(page)) fetching = this.fetch(page.state);
      }
    } catch (error) {
      if (!this.stopped) this.pages.push({ ok: false, error });
    } finally {
      this.running = false;
      this.wake('taker');
    }
  }

  private wake(who: 'taker' | 'reader'): void {
    const wake = who === 'taker' ? this.wakeTaker : this.wakeReader;
    if (who === 'taker') this.wakeTaker = undefined;
    else this.wakeReader = undefined;
    wake?.();
  }
}

/**
 * Runs sync runs in slices. Each page's rows and the phase checkpoint commit in one transaction,
 * under a check that this slice still holds the run's lease and the run is still running, so a
 * cancelled run or a slice whose run was resumed elsewhere (after a crash) commits nothing more.
 *
 * Phases that allow it read ahead: pages N+1.. are fetched (and hashed and serialised) while page N
 * commits. Commits stay strictly in page order and each carries only its own page's checkpoint,
 * so the stored state is never ahead of the stored rows; a page read ahead and not committed
 * (cancel, lost lease, failure) is simply dropped and read again by whoever resumes.
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
      const deadline = Date.now() + this.options.sliceMs;
      for (const phase of module.phases) {
        const stored = await this.loadPhase(run, phase.name);
        if (stored?.runId === runId && stored.state.done) continue;
        const state: PhaseState = stored?.runId === runId ? stored.state.s : await phase.init(ctx, stored?.state.s);
        const outcome = await this.runPhase(run, lease, ctx, phase, state, deadline, counters, flushed, () => {
          if (aborted) throw aborted;
        });
        if (outcome === 'continue') {
          await this.flushCounters(runId, lease, counters, flushed);
          return 'continue';
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

  /**
   * Commits the phase's pages in order until it is done, or until the slice's time is up
   * ('continue'). Reads run ahead of the commits where the phase allows it, but no read starts
   * after the slice's time is up, so the slice never drops a page it paid an upstream call for
   * (it may overrun by the pages already read). A page read ahead also starts its transaction
   * while the page before it is still committing (see commitPage); at most two are open.
   */
  private async runPhase(
    run: SyncRunRow,
    lease: string,
    ctx: SyncContext,
    phase: SyncPhase<PhaseState>,
    initial: PhaseState,
    deadline: number,
    counters: RunCounters,
    flushed: RunCounters,
    throwIfAborted: () => void,
  ): Promise<'done' | 'continue'> {
    const tracked = phase.tracksDeletions ?? [];
    const readsAhead = (page: { state: PhaseState }) => this.options.readAhead > 0 && (phase.canReadAhead?.(page.state) ?? false);
    const reader = new PageReader(
      (state) => phase.readPage(ctx, state),
      (page) => this.prepare(page),
      (page) => !page.done && Date.now() <= deadline && readsAhead(page),
      Math.max(1, this.options.readAhead),
    );
    let state = initial;
    let committing: InFlight | undefined;
    try {
      for (;;) {
        throwIfAborted();
        if (reader.idle) {
          // Everything read so far is committed before the phase reads on from the stored state.
          if (committing) {
            await committing.done;
            committing = undefined;
            continue;
          }
          if (Date.now() > deadline) return 'continue';
          reader.start(state);
        }
        const ready = await reader.take();
        if (!ready) continue;
        const previous = committing;
        const done = this.commitPage(run, lease, phase.name, tracked, ready, previous, counters, flushed);
        // Settled by whoever awaits it below; a failure is not lost, only reported once.
        done.catch(() => undefined);
        committing = { done, keys: new Set(ready.writes.flatMap((w) => w.keys.map((k) => `${w.stream}\u0000${k}`))) };
        // This page may overlap the previous one's commit only if it was read ahead of it.
        if (previous) await previous.done;
        if (!readsAhead(ready.page) || ready.page.done) {
          await done;
          committing = undefined;
        }
        state = ready.page.state;
        if (ready.page.done) return 'done';
      }
    } finally {
      // Pages read ahead and not committed (cancel, lost lease, failure) are dropped here; a
      // transaction still open is left to finish or roll back before the slice ends.
      reader.stop();
      await committing?.done.catch(() => undefined);
    }
  }

  /** A page's rows hashed and serialised for the commit, and its checkpoint as it was read. */
  private async prepare({ rows, ...page }: PageResult<PhaseState>): Promise<ReadyPage> {
    // Serialised first, before anything else can run: the checkpoint is this page's state exactly.
    const checkpoint = JSON.stringify({ s: page.state, done: page.done } satisfies StoredPhaseState);
    const writes: PreparedRows[] = [];
    const counts: Record<string, number> = {};
    for (const [stream, list] of Object.entries(rows) as Array<[StreamName, StreamRow[] | undefined]>) {
      if (!list) continue;
      writes.push(await prepareRows(stream, list));
      counts[stream] = (counts[stream] ?? 0) + list.length;
    }
    return { page, writes, counts, checkpoint };
  }

  /**
   * Rows, deletions, checkpoint and run counters of one page: all or nothing. With `previous` (the
   * page before it, still committing), the rows whose keys that page does not hold are written at
   * once, overlapping its commit; the run row is claimed, and with it the checkpoint stored, only
   * once `previous` has committed, so checkpoints commit in page order and never ahead of their
   * rows. Should `previous` fail, this transaction rolls back. Keys in both pages (an offset shift
   * upstream) are written after `previous`, so the two transactions never wait on each other.
   */
  private async commitPage(
    run: SyncRunRow,
    lease: string,
    phase: string,
    tracked: StreamName[],
    ready: ReadyPage,
    previous: InFlight | undefined,
    counters: RunCounters,
    flushed: RunCounters,
  ): Promise<void> {
    const { page } = ready;
    let upto: RunCounters | undefined;
    await this.db.transaction().execute(async (trx) => {
      const later: Array<{ w: PreparedRows; only: number[] }> = [];
      for (const w of ready.writes) {
        const recordSeen = tracked.includes(w.stream);
        if (!previous) {
          await writeRows(trx, run.tenant_key, run.id, w, { recordSeen });
          continue;
        }
        const now: number[] = [];
        const after: number[] = [];
        w.keys.forEach((k, i) => (previous.keys.has(`${w.stream}\u0000${k}`) ? after : now).push(i));
        await writeRows(trx, run.tenant_key, run.id, w, { recordSeen, only: now });
        if (after.length > 0) later.push({ w, only: after });
      }
      if (previous) await previous.done;
      // Taken now, once the page before is flushed: reads ahead add to the counters meanwhile.
      upto = { ...counters };
      await this.claimPage(trx, run, lease, phase, ready, upto, flushed);
      for (const { w, only } of later) {
        await writeRows(trx, run.tenant_key, run.id, w, { recordSeen: tracked.includes(w.stream), only });
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
    });
    // Before this promise settles: the page after this one claims only once it has.
    if (upto) Object.assign(flushed, upto);
    for (const [stream, n] of Object.entries(ready.counts)) {
      if (n > 0) this.services.metrics.syncRows.inc({ stream }, n);
    }
  }

  /**
   * In a page's transaction: adds the page to the run's counters and stores the phase checkpoint,
   * only if this slice still holds the lease of a running run (otherwise the page rolls back). The
   * update also locks the run row until the page commits, so a cancel waits for the page or wins
   * before it.
   */
  private async claimPage(
    trx: Transaction<Database>,
    run: SyncRunRow,
    lease: string,
    phase: string,
    ready: ReadyPage,
    upto: RunCounters,
    flushed: RunCounters,
  ): Promise<void> {
    const res = await sql<{ n: number }>`
      with claimed as (
        update sync_runs set
          counts = (
            select coalesce(jsonb_object_agg(k, coalesce((sync_runs.counts ->> k)::bigint, 0) + coalesce((${JSON.stringify(ready.counts)}::jsonb ->> k)::bigint, 0)), '{}'::jsonb)
              from jsonb_object_keys(sync_runs.counts || ${JSON.stringify(ready.counts)}::jsonb) as k),
          pages = pages + 1,
          upstream_calls = upstream_calls + ${upto.upstreamCalls - flushed.upstreamCalls}::int,
          throttled_waits = throttled_waits + ${upto.throttledWaits - flushed.throttledWaits}::int,
          heartbeat_at = now()
        where id = ${run.id} and lease_id = ${lease} and status = 'running'
        returning id
      ),
      checkpoint as (
        insert into stream_states (tenant_key, module, stream, state, run_id)
        select ${run.tenant_key}, ${run.module}, ${phase}, ${ready.checkpoint}::jsonb, id from claimed
        on conflict (tenant_key, module, stream) do update set state = excluded.state, run_id = excluded.run_id, updated_at = now()
      )
      select count(*)::int as n from claimed`.execute(trx);
    if ((res.rows[0]?.n ?? 0) > 0) return;
    const current = await trx.selectFrom('sync_runs').select(['status']).where('id', '=', run.id).executeTakeFirst();
    // Only a cancelled (or vanished) run is over; a lost lease means another slice carries on.
    throw new RunAbortedError(!current || current.status === 'cancelled' ? 'cancelled' : 'lease_lost');
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
