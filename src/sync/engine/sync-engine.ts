import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { TenantNotActiveError, TenantNotFoundError } from '../../tenants/tenant-errors.js';
import type { LarkHttp } from '../../lark/http.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { TenantTokens } from '../../tokens/tokens.service.js';
import type { Pacer } from '../pacer.js';
import { streamReads } from '../stream-reads.js';
import { identityUserOf } from '../identity.js';
import { UserAuthorizationRequiredError } from '../../grants/grant-errors.js';
import { RunAbortedError, SliceDeferredError, SyncError } from '../sync-errors.js';
import { enqueueSlice } from '../sync.service.js';
import { SyncLarkClient, defaultRetryPolicy, type RetryPolicy } from '../sync-lark-client.js';
import type { PageResult, PhaseState, SyncContext, SyncModuleDef, SyncPhase } from '../sync-module.js';
import type { SyncModuleName } from '../sync.tables.js';
import { loadPhaseState } from './checkpoints.js';
import { commitPage, keysOf, type InFlight } from './commit-page.js';
import { PageReader } from './page-reader.js';
import { preparePage } from './prepare-page.js';
import { RunLease } from './run-lease.js';
import { nextReadSeq } from '../read-seq.js';

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

/** What the engine needs from the rest of larksync, and no more. */
export interface EngineDeps {
  db: Kysely<Database>;
  log: Logger;
  metrics: Metrics;
  http: LarkHttp;
  tenants: { get(tenantKey: string): Promise<{ status: string } | undefined> };
  tokens: { forTenant(tenantKey: string): Promise<TenantTokens> };
  connectors: { validate(module: SyncModuleName, config: unknown): Record<string, unknown> };
  grants: { forUser(key: { appId: string; tenantKey: string; openId: string }): Promise<TenantTokens> };
  /**
   * Told when a run has ended `succeeded` or `partial` (after its commit): what follows a run's
   * data elsewhere starts at once instead of at its next poll. Failures are logged, never the run's.
   */
  runFinished?(run: { id: string; tenant_key: string; module: string }): Promise<void>;
  /**
   * Told after a page that wrote rows has committed, with the streams it wrote: what follows a
   * stream (knowledge-base sinks) can start while the run goes on. Called without waiting; it
   * must not throw and should be cheap (throttle there).
   */
  pageCommitted?(run: { id: string; tenant_key: string; module: string }, streams: string[]): void;
}

/** `deferred`: Lark throttled for longer than the slice had left; the run is queued again for then. */
export type SliceOutcome = 'succeeded' | 'partial' | 'failed' | 'continue' | 'deferred' | 'aborted';

/**
 * Throttle waits a run may take over all its slices, in multiples of the per-call limit: a slice
 * deferred by a throttle starts its call's count afresh, and Lark must not keep a run alive forever.
 */
const RUN_THROTTLE_FACTOR = 5;

/**
 * Runs sync runs in slices. Each page's rows and the phase checkpoint commit in one transaction,
 * under a check that this slice still holds the run's lease and the run is still running, so a
 * cancelled run or a slice whose run was resumed elsewhere (after a crash) commits nothing more.
 *
 * Phases that allow it read ahead: pages N+1.. are fetched (and hashed and serialised) while page N
 * commits. Commits stay strictly in page order and each carries only its own page's checkpoint,
 * so the stored state is never ahead of the stored rows; a page read ahead and not committed
 * (cancel, lost lease, failure) is simply dropped and read again by whoever resumes.
 *
 * The pieces, each in its own file: the lease (run-lease.ts), checkpoints (checkpoints.ts), the
 * page reader (page-reader.ts), page preparation (prepare-page.ts) and the commit (commit-page.ts).
 */
export class SyncEngine {
  constructor(
    private readonly deps: EngineDeps,
    private readonly modules: Readonly<Record<string, SyncModuleDef>>,
    private readonly pacer: Pacer,
    private readonly options: EngineOptions = defaultEngineOptions,
  ) {}

  async runSlice(runId: string, leaseId: string): Promise<SliceOutcome> {
    const { db, log, metrics } = this.deps;
    const lease = await RunLease.claim(db, runId, leaseId);
    if (!lease) return 'aborted';
    const { run } = lease;
    lease.startHeartbeat(this.options.heartbeatMs);
    const deadline = Date.now() + this.options.sliceMs;
    try {
      const module = this.modules[run.module];
      // A run of a module this version does not have (queued before a downgrade, say).
      if (!module) throw new SyncError('invalid_config', `larksync has no module named ${run.module}`);
      const ctx = await this.context(lease, module, deadline);
      module.precheck?.(ctx);
      for (const phase of module.phases) {
        const stored = await loadPhaseState(db, run.tenant_key, run.module, phase);
        const resumed = stored?.runId === runId ? stored.state : undefined;
        if (resumed?.done) continue;
        const state: PhaseState = resumed ? resumed.s : await phase.init(ctx, stored?.state.s);
        if ((await this.runPhase(lease, ctx, phase, state, deadline)) === 'continue') {
          await lease.flushCounters();
          return 'continue';
        }
      }
      const status = await lease.finish('succeeded', null);
      if (!status) return 'aborted';
      metrics.syncRuns.inc({ module: run.module, status, error_class: '' });
      await this.deps.runFinished?.(run).catch((err: unknown) => log.warn({ runId, errMessage: (err as Error).message }, 'after-run hook failed'));
      return status === 'partial' ? 'partial' : 'succeeded';
    } catch (caught) {
      let err = caught;
      if (err instanceof SliceDeferredError) {
        const waits = run.throttled_waits + lease.counters.throttledWaits;
        if (waits <= this.options.retry.maxThrottles * RUN_THROTTLE_FACTOR) {
          // Pages committed so far stay; the page being read is read again when the run resumes.
          await lease.flushCounters();
          await lease.defer();
          await enqueueSlice(db, run.id, lease.id, run.tenant_key, err.resumeAt);
          log.info({ runId, resumeAt: err.resumeAt.toISOString() }, 'sync slice deferred: Lark asked to wait longer than the slice had left');
          return 'deferred';
        }
        err = new SyncError('rate_limited', `Lark kept throttling this run (${waits} waits across its slices)`);
      }
      if (err instanceof RunAbortedError) {
        if (err.reason === 'cancelled') await lease.forgetIfCancelled().catch(() => undefined);
        log.info({ runId, reason: err.reason, upstreamCalls: lease.counters.upstreamCalls }, 'sync slice stopped');
        return 'aborted';
      }
      const failure =
        err instanceof SyncError ? err : new SyncError('internal_error', `unexpected error: ${(err as Error).message ?? String(err)}`);
      if (!(err instanceof SyncError)) log.error({ runId, errMessage: (err as Error).message }, 'sync run crashed');
      await lease.flushCounters().catch(() => undefined);
      await lease.finish('failed', failure);
      metrics.syncRuns.inc({ module: run.module, status: 'failed', error_class: failure.errorClass });
      return 'failed';
    } finally {
      lease.stopHeartbeat();
    }
  }

  private async context(lease: RunLease, module: SyncModuleDef, deadline: number): Promise<SyncContext> {
    const { run } = lease;
    const { db, tenants, connectors, tokens: tokenService, log, http, metrics } = this.deps;
    const tenant = await tenants.get(run.tenant_key);
    if (!tenant || tenant.status !== 'active') {
      throw new SyncError('tenant_not_active', `tenant ${run.tenant_key} is not active`);
    }
    const connector = await db
      .selectFrom('connectors')
      .select(['config'])
      .where('tenant_key', '=', run.tenant_key)
      .where('module', '=', run.module)
      .executeTakeFirst();
    // The stored config was valid when saved; a module upgrade may have changed its schema since.
    let config: Record<string, unknown>;
    try {
      config = connectors.validate(run.module, connector?.config ?? {});
    } catch (err) {
      throw err instanceof AppError ? new SyncError('invalid_config', `connector config is invalid: ${err.message}`) : err;
    }
    // Resolved once per slice: every upstream call of the slice reuses it.
    const appTokens = await tokenService.forTenant(run.tenant_key).catch((err: unknown) => {
      // Uninstalled between the status check and this lookup: the same class as above.
      throw err instanceof TenantNotActiveError || err instanceof TenantNotFoundError || err instanceof AppError ? new SyncError('tenant_not_active', err.message) : err;
    });
    // Reading as a signed-in user (identity { user }): that user's token, the same app and pacing.
    const asUser = identityUserOf(config);
    const tokens = asUser
      ? await this.deps.grants.forUser({ appId: appTokens.app.appId, tenantKey: run.tenant_key, openId: asUser }).catch((err: unknown) => {
          throw err instanceof UserAuthorizationRequiredError ? new SyncError('user_authorization_required', err.message) : err;
        })
      : appTokens;
    return {
      tenantKey: run.tenant_key,
      appKind: tokens.app.kind,
      runId: run.id,
      mode: run.mode,
      config,
      lark: new SyncLarkClient({ http, metrics }, tokens, this.pacer, module.limits, lease.counters, () => lease.checkAlive(), this.options.retry, deadline),
      log,
      read: streamReads(db, run.tenant_key, run.id),
      moduleReads: module.reads?.(db, run.tenant_key),
    };
  }

  /**
   * Commits the phase's pages in order until it is done, or until the slice's time is up
   * ('continue'). Reads run ahead of the commits where the phase allows it, but no read starts
   * after the slice's time is up, so the slice never drops a page it paid an upstream call for
   * (it may overrun by the pages already read). A page read ahead also starts its transaction
   * while the page before it is still committing (see commitPage); at most two are open.
   */
  private async runPhase(
    lease: RunLease,
    ctx: SyncContext,
    phase: SyncPhase<PhaseState>,
    initial: PhaseState,
    deadline: number,
  ): Promise<'done' | 'continue'> {
    const tracked = phase.tracksDeletions ?? [];
    const streams = this.modules[lease.run.module]!.streams;
    const readsAhead = (page: { state: PhaseState }) => this.options.readAhead > 0 && (phase.canReadAhead?.(page.state) ?? false);
    const reader = new PageReader(
      // Numbered before the read starts: a change event re-read after this moment wins over it.
      async (state) => {
        const readSeq = await nextReadSeq(this.deps.db);
        return { ...(await phase.readPage(ctx, state)), readSeq };
      },
      (page) => preparePage(page, streams),
      (page: PageResult<PhaseState>) => !page.done && Date.now() <= deadline && readsAhead(page),
      Math.max(1, this.options.readAhead),
    );
    let state = initial;
    let committing: InFlight | undefined;
    try {
      for (;;) {
        lease.throwIfAborted();
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
        const done = commitPage(this.deps, lease, phase.name, tracked, ready, previous);
        const told = this.deps.pageCommitted;
        const written = told ? ready.writes.filter((w) => w.keys.length > 0).map((w) => w.stream.name) : [];
        if (told && written.length > 0) {
          done.then(
            () => told(lease.run, written),
            () => undefined,
          );
        }
        // Settled by whoever awaits it below; a failure is not lost, only reported once.
        done.catch(() => undefined);
        committing = { done, keys: keysOf(ready) };
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
}
