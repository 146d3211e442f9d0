import { sql, type Kysely } from 'kysely';
import { systemClock, type Clock } from '../clock.js';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import type { ItemError, RunStatus, SyncMode, SyncModuleName, SyncRunRow } from './sync.tables.js';
import { emitWebhookEvent } from '../webhooks/emit.js';
import { DEFAULT_EVENTS_INTERVAL_MINUTES } from './connectors.service.js';

export interface SyncRunView {
  id: string;
  tenantKey: string;
  module: SyncModuleName;
  mode: SyncMode;
  status: RunStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  counts: Record<string, number>;
  pages: number;
  upstreamCalls: number;
  throttledWaits: number;
  /** rows marked deleted after their absence was confirmed, and candidates that turned out alive */
  deletions: { confirmed: number; candidatesAlive: number };
  valuesSanitized: number;
  error: { class: string; message: string } | null;
  itemErrors: ItemError[];
}

export function toRunView(r: SyncRunRow): SyncRunView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: r.id,
    tenantKey: r.tenant_key,
    module: r.module,
    mode: r.mode,
    status: r.status,
    createdAt: r.created_at.toISOString(),
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    counts: r.counts,
    pages: r.pages,
    upstreamCalls: r.upstream_calls,
    throttledWaits: r.throttled_waits,
    deletions: { confirmed: r.deletions_confirmed, candidatesAlive: r.deletion_candidates_alive },
    valuesSanitized: r.values_sanitized,
    error: r.error_class ? { class: r.error_class, message: r.error_message ?? '' } : null,
    itemErrors: r.item_errors,
  };
}

const ACTIVE: RunStatus[] = ['queued', 'running'];

/** Takeovers of a silent run before it is failed as crashed_repeatedly. */
export const DEFAULT_MAX_RESUMES = 5;

/** Runs as jobs in Postgres: creation is idempotent per (tenant, module) while one is queued or running. */
export class SyncService {
  constructor(
    private readonly db: Kysely<Database>,
    /** What "now" is for run times and schedules. */
    private readonly clock: Clock = systemClock,
  ) {}

  /** Returns the new run (created: true) or the one already queued or running. */
  async trigger(
    tenantKey: string,
    module: SyncModuleName,
    mode: SyncMode,
    trigger: 'api' | 'schedule',
  ): Promise<{ run: SyncRunRow; created: boolean }> {
    const tenant = await this.db.selectFrom('tenants').select(['status']).where('tenant_key', '=', tenantKey).executeTakeFirst();
    if (!tenant) throw new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
    if (tenant.status !== 'active') {
      await this.cancelTenantRuns(tenantKey);
      throw new AppError(409, 'tenant_not_active', `tenant ${tenantKey} is ${tenant.status}; syncs run only for active tenants`);
    }
    const connector = await this.db
      .selectFrom('connectors')
      .select(['enabled'])
      .where('tenant_key', '=', tenantKey)
      .where('module', '=', module)
      .executeTakeFirst();
    if (!connector) {
      throw new AppError(409, 'connector_not_configured', `configure ${module} first: PUT /api/v1/tenants/${tenantKey}/connectors/${module}`);
    }
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const existing = await this.active(tenantKey, module);
      if (existing) return { run: existing, created: false };
      try {
        const run = await this.db.transaction().execute(async (trx) => {
          // created_at from the clock (the database's now() in production): schedules are judged by it.
          const inserted = await sql<SyncRunRow>`
            insert into sync_runs (tenant_key, module, mode, trigger, status, lease_id, counts, created_at)
            values (${tenantKey}, ${module}, ${mode}, ${trigger}, 'queued', gen_random_uuid(), '{}'::jsonb, ${this.clock.sql()})
            returning *`.execute(trx);
          const created = inserted.rows[0]!;
          await enqueueSlice(trx, created.id, created.lease_id as string, tenantKey);
          return created;
        });
        return { run, created: true };
      } catch (err) {
        // Lost the race against a concurrent trigger: return theirs.
        if ((err as { code?: string }).code !== '23505') throw err;
      }
    }
    throw new AppError(409, 'sync_conflict', 'could not create or find the active run; retry');
  }

  async get(id: string): Promise<SyncRunRow | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    return this.db.selectFrom('sync_runs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(tenantKey: string, opts: { limit: number; module?: SyncModuleName }): Promise<SyncRunRow[]> {
    let q = this.db.selectFrom('sync_runs').selectAll().where('tenant_key', '=', tenantKey).orderBy('id', 'desc').limit(opts.limit);
    if (opts.module) q = q.where('module', '=', opts.module);
    return q.execute();
  }

  async active(tenantKey: string, module: SyncModuleName): Promise<SyncRunRow | undefined> {
    return this.db
      .selectFrom('sync_runs')
      .selectAll()
      .where('tenant_key', '=', tenantKey)
      .where('module', '=', module)
      .where('status', 'in', ACTIVE)
      .executeTakeFirst();
  }

  /** Cancels a queued or running run; a running slice notices at its next heartbeat or page. */
  async cancel(id: string): Promise<SyncRunRow | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    await this.db
      .updateTable('sync_runs')
      .set({ status: 'cancelled', finished_at: sql<Date>`now()`, error_class: 'cancelled', error_message: 'cancelled through the API' })
      .where('id', '=', id)
      .where('status', 'in', ACTIVE)
      .execute();
    return this.get(id);
  }

  /** A paused or uninstalled tenant's queued and running work stops. */
  async cancelTenantRuns(tenantKey: string, reason = 'tenant is no longer active'): Promise<number> {
    const res = await this.db
      .updateTable('sync_runs')
      .set({ status: 'cancelled', finished_at: sql<Date>`now()`, error_class: 'tenant_not_active', error_message: reason })
      .where('tenant_key', '=', tenantKey)
      .where('status', 'in', ACTIVE)
      .executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  /**
   * Runs whose slice stopped heart-beating (its process died) get a new lease and a new job, so
   * they resume from their last checkpoint within seconds rather than after graphile-worker's
   * hours-long stale-lock timeout. The old job, if it ever runs, finds its lease gone.
   *
   * A run taken over `maxResumes` times already is failed instead (`crashed_repeatedly`): a slice
   * that kills its process (a page that exhausts memory) would otherwise be handed from replica
   * to replica, taking each one down.
   */
  async resumeStaleRuns(
    staleAfterMs: number,
    maxResumes = DEFAULT_MAX_RESUMES,
  ): Promise<{ resumed: string[]; failed: Array<{ id: string; module: SyncModuleName }> }> {
    return this.db.transaction().execute(async (trx) => {
      const stale = await sql<{ id: string; resumes: number; module: SyncModuleName }>`
        select id, resumes, module from sync_runs r
         where status = 'running' and heartbeat_at < now() - make_interval(secs => ${staleAfterMs / 1000})
           -- A slice waiting for a worker (all slots busy, or its queue still locked by a dead
           -- worker until that lock is released) has not died: counting the wait as a death would
           -- fail healthy runs as crashed_repeatedly on a busy fleet, and hand one kill on twice.
           and not exists (
             select 1 from graphile_worker._private_jobs j
              join graphile_worker._private_tasks t on t.id = j.task_id
              -- is_available: unlocked and with an attempt left. A job whose one attempt died with
              -- its process never runs again, so its run is dead, not waiting.
              where t.identifier = 'sync_run' and j.is_available
                and j.payload->>'runId' = r.id::text and j.payload->>'lease' = r.lease_id::text)
         for update of r skip locked`.execute(trx);
      const failed = stale.rows.filter((r) => r.resumes >= maxResumes);
      const give = failed.map((r) => r.id);
      const take = stale.rows.filter((r) => r.resumes < maxResumes).map((r) => r.id);
      if (give.length > 0) {
        const crashed = await sql<SyncRunRow>`
          update sync_runs set status = 'failed', finished_at = now(), error_class = 'crashed_repeatedly',
                 error_message = 'the process running this run died ' || (resumes + 1) || ' times in a row (a crash or running out of ' ||
                                 'memory, e.g. on a very large page); it is not resumed again: look at the process logs, then trigger a new run'
           where id = any(${give}::bigint[])
          returning *`.execute(trx);
        for (const run of crashed.rows) await emitWebhookEvent(trx, { type: 'sync.finished', tenantKey: run.tenant_key, data: { run: toRunView(run) } });
        await sql`delete from sync_seen_pages where run_id = any(${give}::bigint[])`.execute(trx);
      }
      const resumed = await sql<{ id: string; lease_id: string; tenant_key: string }>`
        update sync_runs set lease_id = gen_random_uuid(), heartbeat_at = now(), resumes = resumes + 1
         where id = any(${take}::bigint[])
        returning id, lease_id, tenant_key`.execute(trx);
      for (const r of resumed.rows) await enqueueSlice(trx, r.id, r.lease_id, r.tenant_key);
      // Slice jobs whose one attempt died with their process never run again (enqueueSlice): their
      // runs were judged above, so the jobs are only clutter in graphile-worker's table.
      await sql`
        delete from graphile_worker._private_jobs j
         using graphile_worker._private_tasks t
         where t.id = j.task_id and t.identifier = 'sync_run' and j.locked_at is null and j.attempts >= j.max_attempts`.execute(trx);
      return { resumed: resumed.rows.map((r) => r.id), failed: failed.map((r) => ({ id: r.id, module: r.module })) };
    });
  }

  /**
   * Creates the runs that are due for enabled connectors of active tenants. A module with a
   * full-pass period gets a full run when its last successful full pass is older than that (Base:
   * to mark deletions); otherwise runs are incremental. A partial full pass counts: the items that
   * failed would fail a repeated pass as well, and every other item got its full pass.
   *
   * Each connector runs at its own minute of its interval: slots at phase + k * interval from the
   * epoch, the phase a hash of (tenant, module), so 10,000 tenants are not all queued at the top of
   * the hour. A connector is due once a slot has passed with no run (of any trigger) created since
   * a minute before it; a connector that never ran is due at once. So runs come exactly one
   * interval apart and never more than an interval and a minute apart; after a burst (many tenants
   * installed at once) each connector's next run is at its own slot, spread evenly over the next
   * interval. A run still going at its slot is followed up when it ends, then the connector is
   * back on its slot. A run triggered through the API does not move the slots.
   */
  async scheduleDue(fullPassEveryHours: Partial<Record<SyncModuleName, number>>): Promise<number> {
    // While a module's change events are healthy (connector_event_health, judged each minute by
    // subscriptions/), polling is the safety net: its interval stretches to events_interval_minutes
    // and each of its runs is a full pass. A gap brings the configured interval back at once (its
    // slot has long passed).
    const due = await sql<{ tenant_key: string; module: SyncModuleName; interval_minutes: number; last_full: Date | null; stretched: boolean }>`
      with clock as (select floor(extract(epoch from ${this.clock.sql()}))::bigint as now_s)
      select c.tenant_key, c.module, (p.period / 60)::int as interval_minutes, p.stretched,
             (select max(r.created_at) from sync_runs r
               where r.tenant_key = c.tenant_key and r.module = c.module and r.mode = 'full' and r.status in ('succeeded', 'partial')) as last_full
        from connectors c
        join tenants t on t.tenant_key = c.tenant_key and t.status = 'active'
        left join connector_event_health h on h.tenant_key = c.tenant_key and h.module = c.module
        cross join clock
        cross join lateral (
          select coalesce(h.healthy, false) and coalesce(c.events_interval_minutes, ${DEFAULT_EVENTS_INTERVAL_MINUTES}) > c.interval_minutes as stretched) st
        cross join lateral (
          select (case when st.stretched then coalesce(c.events_interval_minutes, ${DEFAULT_EVENTS_INTERVAL_MINUTES}) else c.interval_minutes end)::bigint * 60 as period,
                 st.stretched) p
        -- hashtextextended: Postgres's own text hash, the one hash partitioning keeps stable.
        cross join lateral (
          select mod(mod(hashtextextended(c.tenant_key || '/' || c.module, 0), p.period) + p.period, p.period) as phase) ph
        cross join lateral (
          select clock.now_s - mod(mod(clock.now_s - ph.phase, p.period) + p.period, p.period) as latest) slot
       where c.enabled
         and not exists (select 1 from sync_runs r where r.tenant_key = c.tenant_key and r.module = c.module and r.status in ('queued', 'running'))
         -- A minute's grace: a slot's run is created by the first tick after the slot.
         and not exists (select 1 from sync_runs r where r.tenant_key = c.tenant_key and r.module = c.module
                            and r.created_at > to_timestamp(slot.latest - 60))`.execute(this.db);
    const now = this.clock.now().getTime();
    let created = 0;
    for (const row of due.rows) {
      const period = fullPassEveryHours[row.module];
      // Half an interval of slack: runs are exactly one interval apart, so "older than the period"
      // must not depend on which second of its minute a slot's run was created.
      const fullDueBefore = period === undefined ? 0 : now - period * 3_600_000 + (row.interval_minutes * 60_000) / 2;
      const needsFull = period !== undefined && (row.stretched || !row.last_full || row.last_full.getTime() < fullDueBefore);
      try {
        const res = await this.trigger(row.tenant_key, row.module, needsFull ? 'full' : 'incremental', 'schedule');
        if (res.created) created += 1;
      } catch {
        // The tenant changed state meanwhile; the next tick looks again.
      }
    }
    return created;
  }
}

/**
 * Queues one slice of a run, at once or at `runAt`; slices of one tenant run one at a time. One attempt: a slice job whose process dies is never taken again by
 * graphile-worker once the dead worker's lock is released. The stale-run sweep resumes the run
 * instead, under a new lease, and counts the takeover toward `crashed_repeatedly`. A job runs
 * slice after slice while no other job waits (worker/slice-turns.ts), so a job retaken after each
 * death would let a run that keeps killing its process be handed on uncounted.
 */
export async function enqueueSlice(db: Kysely<Database>, runId: string, lease: string, tenantKey: string, runAt?: Date): Promise<void> {
  await sql`select graphile_worker.add_job(
    'sync_run',
    json_build_object('runId', ${runId}::text, 'lease', ${lease}::text),
    queue_name => ${'sync:' + tenantKey},
    run_at => ${runAt ?? null}::timestamptz,
    max_attempts => 1
  )`.execute(db);
}
