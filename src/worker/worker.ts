import { Logger as WorkerLogger, run, type Runner } from 'graphile-worker';
import type { Services } from '../services.js';
import { CRONTAB, createTaskList } from './tasks.js';

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
  concurrency?: number;
  pollInterval?: number;
  /** How often this process looks for runs whose slice stopped heart-beating. */
  staleSweepMs?: number;
  /** A running slice silent for this long is taken to be dead (its process was killed). */
  staleAfterMs?: number;
}

export interface WorkerHandle {
  runner: Runner;
  stop(): Promise<void>;
}

export async function startWorker(services: Services, opts: WorkerOptions = {}): Promise<WorkerHandle> {
  const runner = await run({
    pgPool: services.pool,
    taskList: createTaskList(services),
    crontab: CRONTAB,
    concurrency: opts.concurrency ?? services.config.workerConcurrency,
    pollInterval: opts.pollInterval ?? 2_000,
    noHandleSignals: true,
    logger: workerLogger(services),
  });
  const staleAfterMs = opts.staleAfterMs ?? 20_000;
  const sweep = setInterval(() => {
    services.sync.resumeStaleRuns(staleAfterMs).then(
      (ids) => ids.length > 0 && services.log.info({ runIds: ids }, 'resumed sync runs whose process stopped'),
      (err: Error) => services.log.warn({ errMessage: err.message }, 'stale run sweep failed'),
    );
  }, opts.staleSweepMs ?? 10_000);
  sweep.unref();
  return {
    runner,
    async stop() {
      clearInterval(sweep);
      await runner.stop();
    },
  };
}
