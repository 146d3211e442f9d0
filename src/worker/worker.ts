import { EventEmitter } from 'node:events';
import { Logger as WorkerLogger, run, type Runner, type WorkerEvents } from 'graphile-worker';
import type { Services } from '../services.js';
import { CRONTAB, createTaskList } from './tasks.js';
import { DEAD_AFTER_MS, forgetWorkers, heartbeatWorkers, unlockDeadWorkers } from './worker-processes.js';

function workerLogger(services: Services): WorkerLogger {
  return new WorkerLogger((scope) => (level, message) => {
    // graphile-worker messages carry job ids and task names, never payloads.
    const log = services.log.child({ component: 'worker', ...(scope.label ? { label: scope.label } : {}) });
    if (level === 'error') log.error(message);
    else if (level === 'warning') log.warn(message);
    else log.debug(message);
  });
}

export interface WorkerOptions {
  /** Run the minute crons (schedule_syncs, refresh_tokens, purge_events); tests that count calls turn them off. */
  cron?: boolean;
  concurrency?: number;
  pollInterval?: number;
  /** How often this process beats and looks for dead workers and stalled runs. */
  maintenanceMs?: number;
  /** A running sync slice silent for this long is taken to be dead (its process was killed). */
  staleRunAfterMs?: number;
  /** A worker silent for this long is dead; its locks are released. */
  deadWorkerAfterMs?: number;
}

export interface WorkerHandle {
  runner: Runner;
  stop(): Promise<void>;
}

export async function startWorker(services: Services, opts: WorkerOptions = {}): Promise<WorkerHandle> {
  const workerIds = new Set<string>();
  const events: WorkerEvents = new EventEmitter();
  events.on('worker:create', ({ worker }) => workerIds.add(worker.workerId));
  // graphile-worker 0.17 locks jobs under the pool's id, not the worker's: without beating for
  // it too, this process's own long jobs (a 20 s sync slice) would look dead and be released.
  events.on('pool:create', ({ workerPool }) => workerIds.add(workerPool.id));
  const runner = await run({
    pgPool: services.pool,
    taskList: createTaskList(services),
    crontab: opts.cron === false ? '' : CRONTAB,
    concurrency: opts.concurrency ?? services.config.workerConcurrency,
    pollInterval: opts.pollInterval ?? 2_000,
    noHandleSignals: true,
    logger: workerLogger(services),
    events,
  });

  const deadAfter = opts.deadWorkerAfterMs ?? DEAD_AFTER_MS;
  // Slices beat every 5 s; three missed beats mean the process is gone.
  const staleRunAfter = opts.staleRunAfterMs ?? 15_000;
  const maintain = async () => {
    await heartbeatWorkers(services.db, workerIds);
    const unlocked = await unlockDeadWorkers(services.db, deadAfter);
    if (unlocked.length > 0) services.log.warn({ workerIds: unlocked }, 'released jobs held by dead workers');
    const resumed = await services.sync.resumeStaleRuns(staleRunAfter);
    if (resumed.length > 0) services.log.info({ runIds: resumed }, 'resumed sync runs whose process stopped');
  };
  await heartbeatWorkers(services.db, workerIds);
  const timer = setInterval(() => {
    maintain().catch((err: Error) => services.log.warn({ errMessage: err.message }, 'worker maintenance failed'));
  }, opts.maintenanceMs ?? 3_000);
  timer.unref();

  return {
    runner,
    async stop() {
      clearInterval(timer);
      await runner.stop();
      await forgetWorkers(services.db, workerIds).catch(() => undefined);
    },
  };
}
