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

export async function startWorker(services: Services, opts: { concurrency?: number; pollInterval?: number } = {}): Promise<Runner> {
  return run({
    pgPool: services.pool,
    taskList: createTaskList(services),
    crontab: CRONTAB,
    concurrency: opts.concurrency ?? services.config.workerConcurrency,
    pollInterval: opts.pollInterval ?? 2_000,
    noHandleSignals: true,
    logger: workerLogger(services),
  });
}
