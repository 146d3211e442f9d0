import type { TaskList } from 'graphile-worker';
import { DRAIN_TASK, EVENT_SHARDS, purgeEventsOlderThan, wakeStalledShards } from '../events/events.repository.js';
import { enqueueSlice } from '../sync/sync.service.js';
import { APPLY_TASK, baseQueue } from '../writes/writes.service.js';
import { RetryLater } from '../writes/write-applier.js';
import type { Services } from '../services.js';
import { MODULES, STREAM_CATALOG, SYNC_MODULES } from '../connectors/index.js';
import type { SyncModuleName } from '../sync/sync.tables.js';
import { dropFinishedSeenPages, pruneSyncRuns, purgeUninstalledTenants } from '../retention/retention.js';
import { resealAll } from '../keys/reseal.js';
import { DELIVER_TASK, wakeStalledLanes } from '../webhooks/emit.js';
import { pruneDeliveries } from '../webhooks/webhooks.repository.js';
import { DELIVER_TASK as DELIVER_SINK_TASK, QUEUE_DELIVERIES_TASK } from '../sinks/sinks.service.js';
import { deliverSinkTask, queueSinkDeliveriesTask } from '../sinks/delivery.task.js';
import { SUBSCRIPTIONS_TASK } from '../subscriptions/queue.js';
import { subscriptionsTask } from '../subscriptions/subscriptions.task.js';
import { otherJobsWaiting } from './slice-turns.js';
import { DEFERRED_EVENT_TASK, deferredPayloadOf, runModuleHandler } from '../events/module-events.js';

/** The bulk work, run by a runner of its own (worker.ts); every other task is urgent by comparison. */
export const SYNC_TASKS = ['sync_run', APPLY_TASK, DELIVER_SINK_TASK, SUBSCRIPTIONS_TASK] as const;

/** Webhook lanes: HTTP calls of up to 10 s each, run by a runner of their own (WEBHOOK_CONCURRENCY). */
export const WEBHOOK_TASKS = [DELIVER_TASK] as const;

/** Every task the urgent runner does not run: it runs all the others (event drains, token refresh, cron). */
export const NOT_URGENT_TASKS: readonly string[] = [...SYNC_TASKS, ...WEBHOOK_TASKS];

/** Days finished webhook deliveries (and their attempts) are kept. */
export const WEBHOOK_DELIVERY_RETENTION_DAYS = 30;

/** Re-seals every sealed value under the current key; queued at start while retired keys are configured. */
export const RESEAL_TASK = 'reseal_sealed_values';

/** Each module's full-pass period, from its definition. */
export const FULL_PASS_PERIODS: Partial<Record<SyncModuleName, number>> = Object.fromEntries(
  Object.values(SYNC_MODULES).flatMap((m) => (m.fullPassEveryHours ? [[m.name, m.fullPassEveryHours]] : [])),
);

/** Days to keep handled events: far beyond the replay window (purgeEventsOlderThan never goes below it). */
export const EVENT_RETENTION_DAYS = 7;

function eventIdOf(payload: unknown): string {
  // Queued jobs may come from older code: check the shape before trusting it.
  const id = (payload as { id?: unknown } | null)?.id;
  if (typeof id !== 'string' || !/^\d+$/.test(id)) throw new Error('handle_lark_event payload needs a numeric string id');
  return id;
}

function eventIdsOf(payload: unknown): string[] {
  const ids = (payload as { ids?: unknown } | null)?.ids;
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string' && /^\d+$/.test(id))) {
    throw new Error('handle_lark_events payload needs ids, an array of numeric strings');
  }
  return ids as string[];
}

function shardOf(payload: unknown): number {
  const shard = (payload as { shard?: unknown } | null)?.shard;
  if (!Number.isInteger(shard) || (shard as number) < 0 || (shard as number) >= EVENT_SHARDS) {
    throw new Error(`${DRAIN_TASK} payload needs a shard, an integer from 0 to ${EVENT_SHARDS - 1}`);
  }
  return shard as number;
}

/** A shard whose events have waited this long without being handled gets a drain job regardless. */
const STALLED_EVENT_SECONDS = 60;

function sliceOf(payload: unknown): { runId: string; lease: string } {
  const p = payload as { runId?: unknown; lease?: unknown } | null;
  if (typeof p?.runId !== 'string' || typeof p.lease !== 'string') throw new Error('sync_run payload needs runId and lease');
  return { runId: p.runId, lease: p.lease };
}

/**
 * `stopping`: true once this process has begun to stop its workers: a sync job then ends after
 * its current slice (queuing the next) instead of running the run to its end.
 */
export function createTaskList(services: Services, stopping: () => boolean = () => false): TaskList {
  return {
    [DRAIN_TASK]: async (payload) => {
      // The drain reads on while its shard gets events and no other job of the urgent runner (another
      // shard's drain, the token refresh) waits for a slot; its own shard's next job is in the queue
      // it holds, so it does not count.
      const othersWaiting = () => otherJobsWaiting(services.db, NOT_URGENT_TASKS, { except: true });
      await services.events.drainShard(services, shardOf(payload), { othersWaiting });
    },
    // Batch jobs listing event ids, as an earlier version queued them.
    handle_lark_events: async (payload) => {
      await services.events.processBatch(services, eventIdsOf(payload));
    },
    wake_stalled_event_shards: async () => {
      const shards = await wakeStalledShards(services.db, STALLED_EVENT_SECONDS);
      if (shards.length > 0) services.log.info({ shards }, 'lark events pending for over a minute: drain jobs queued for their shards');
      const requeued = await services.events.requeueOrphanedFailures();
      if (requeued > 0) services.log.warn({ requeued }, 'failed lark events with attempts left had no retry job: queued one each');
    },
    // A single event: retries of a failed one, and jobs queued by earlier versions.
    handle_lark_event: async (payload) => {
      await services.events.process(services, eventIdOf(payload));
    },
    // A module's deferred change-event work (e.g. a document's debounced re-read).
    [DEFERRED_EVENT_TASK]: async (payload, helpers) => {
      const job = deferredPayloadOf(payload);
      const module = Object.hasOwn(MODULES, job.module) ? MODULES[job.module] : undefined;
      const handler = module?.deferred && Object.hasOwn(module.deferred, job.name) ? module.deferred[job.name] : undefined;
      if (!module || !handler) return;
      await runModuleHandler(services, module, handler, job.payload, { eventId: `deferred:${helpers.job.id}`, tenantKey: job.tenantKey, appId: null, pushedAt: new Date() });
    },
    sync_run: async (payload, helpers) => {
      const { runId, lease } = sliceOf(payload);
      let outcome = await services.engine.runSlice(runId, lease);
      // The slice's time is up: the next one goes on here unless another job wants the slot (or
      // the worker is stopping), which saves the next slice a wait for the queue's poll.
      while (outcome === 'continue' && !stopping() && !helpers.abortSignal.aborted && !(await otherJobsWaiting(services.db, SYNC_TASKS))) {
        outcome = await services.engine.runSlice(runId, lease);
      }
      if (outcome === 'continue') {
        // Back of the queue: other tenants' slices run before this run's next one.
        const run = await services.sync.get(runId);
        if (run) await enqueueSlice(services.db, runId, lease, run.tenant_key);
      }
    },
    [APPLY_TASK]: async (payload, helpers) => {
      const p = payload as { appId?: unknown; appToken?: unknown } | null;
      if (typeof p?.appId !== 'string' || typeof p.appToken !== 'string') throw new Error(`${APPLY_TASK} payload needs appId and appToken`);
      const { appId, appToken } = p as { appId: string; appToken: string };
      // The next job of this Base, in its queue (one at a time across replicas), now or later.
      const again = (runAt?: Date) =>
        helpers.addJob(APPLY_TASK, { appId, appToken }, { queueName: baseQueue(appId, appToken), runAt, maxAttempts: 25 });
      try {
        if ((await services.writeApplier.run(appId, appToken)) === 'more') await again();
      } catch (err) {
        if (!(err instanceof RetryLater)) throw err;
        services.log.warn({ appToken, err: err.message }, 'base writes wait: Lark asked to try later');
        await again(new Date(Date.now() + err.afterMs));
      }
    },
    [DELIVER_TASK]: async (payload) => {
      const p = payload as { webhookId?: unknown; tenantKey?: unknown } | null;
      if (typeof p?.webhookId !== 'string' || !/^\d{1,18}$/.test(p.webhookId) || typeof p.tenantKey !== 'string') {
        throw new Error(`${DELIVER_TASK} payload needs webhookId (numeric string) and tenantKey`);
      }
      await services.webhookDispatcher.drainLane(p.webhookId, p.tenantKey);
    },
    wake_stalled_webhook_lanes: async () => {
      const lanes = await wakeStalledLanes(services.db);
      if (lanes > 0) services.log.warn({ lanes }, 'webhook lanes with deliveries due for over a minute had no job: queued one each');
    },
    prune_webhook_deliveries: async () => {
      const n = await pruneDeliveries(services.db, WEBHOOK_DELIVERY_RETENTION_DAYS);
      if (n > 0) services.log.info({ deliveries: n, days: WEBHOOK_DELIVERY_RETENTION_DAYS }, 'pruned finished webhook deliveries');
    },
    [DELIVER_SINK_TASK]: deliverSinkTask(services.sinks),
    [QUEUE_DELIVERIES_TASK]: queueSinkDeliveriesTask(services.sinks),
    [SUBSCRIPTIONS_TASK]: subscriptionsTask(services),
    schedule_syncs: async () => {
      // Judged first: a module whose events are healthy is polled at its stretched interval.
      await services.subscriptions.refreshHealth().catch((err: Error) => {
        services.log.warn({ errMessage: err.message }, 'judging change-event health failed; scheduling with the last verdicts');
      });
      await services.sync.scheduleDue(FULL_PASS_PERIODS);
    },
    refresh_tokens: async (_payload, helpers) => {
      // How long the tick waited for a slot after its minute began, and how long its mints took.
      const queuedMs = Math.max(0, Date.now() - helpers.job.run_at.getTime());
      const startedAt = performance.now();
      const tally = await services.tokens.refreshDue();
      if (tally.refreshed + tally.failed + tally.left > 0) {
        services.log.info({ ...tally, queuedMs, ms: Math.round(performance.now() - startedAt) }, 'token refresh tick');
      }
      // Users' refresh tokens die after about a week unused: those near their end are refreshed.
      await services.grants.refreshDue();
    },
    purge_events: async () => {
      await purgeEventsOlderThan(services.db, EVENT_RETENTION_DAYS);
    },
    prune_sync_history: async () => {
      const runs = await pruneSyncRuns(services.db, services.config.retentionDays);
      const seenPages = await dropFinishedSeenPages(services.db);
      if (runs + seenPages > 0) {
        services.log.info({ runs, seenPages, retentionDays: services.config.retentionDays }, 'pruned old sync runs and the seen keys of finished runs');
      }
    },
    purge_uninstalled_tenants: async () => {
      const purged = await purgeUninstalledTenants(services.db, services.config.uninstallPurgeDays, STREAM_CATALOG.names());
      for (const p of purged) {
        services.log.info({ tenantKey: p.tenantKey, rows: p.rows, tokens: p.tokens }, 'purged the synced data and tokens of an uninstalled tenant');
      }
    },
    [RESEAL_TASK]: async () => {
      const counts = await resealAll(services.db, services.sealer);
      const unreadable = counts.reduce((n, c) => n + c.unreadable, 0);
      const log = { counts, unreadable };
      if (unreadable > 0) services.log.warn(log, 're-sealed under the current ENCRYPTION_KEY; some values open with none of the configured keys');
      else services.log.info(log, 're-sealed every sealed value under the current ENCRYPTION_KEY');
    },
  };
}

/**
 * One process (whichever wins graphile-worker's cron lock) runs each of these: five every minute,
 * the retention tasks daily (RETENTION_DAYS, UNINSTALL_PURGE_DAYS). refresh_tokens goes ahead of
 * queued urgent jobs (priority -10; graphile takes lower first, 0 by default): under a flood of
 * pushes the drains keep the urgent runner's queue full, and a refresh queued behind them ran up
 * to half a minute late (`npm run bench -- contention`).
 */
export const CRONTAB = [
  '* * * * * refresh_tokens ?max=1&priority=-10',
  '* * * * * schedule_syncs ?max=1',
  '* * * * * wake_stalled_event_shards ?max=1',
  '* * * * * wake_stalled_webhook_lanes ?max=1',
  `* * * * * ${QUEUE_DELIVERIES_TASK} ?max=1`,
  '17 3 * * * purge_events ?max=1',
  '27 3 * * * prune_sync_history ?max=1',
  '37 3 * * * purge_uninstalled_tenants ?max=1',
  '47 3 * * * prune_webhook_deliveries ?max=1',
].join('\n');
