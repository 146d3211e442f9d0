import { EventEmitter } from 'node:events';
import { Logger as WorkerLogger, run, type Runner, type TaskList, type WorkerEvents } from 'graphile-worker';
import type { Services } from '../services.js';
import { CRONTAB, NOT_URGENT_TASKS, SYNC_TASKS, WEBHOOK_TASKS, createTaskList } from './tasks.js';
import { EmptyGetRecheck } from './empty-get-recheck.js';
import { collectEmptyJobQueues } from './job-queues-gc.js';
import { otherJobsWaiting } from './slice-turns.js';
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
  /** Sync slices at once (WORKER_CONCURRENCY). */
  concurrency?: number;
  /** Every other job at once: event drains, token refresh, the scheduler, retention. */
  urgentConcurrency?: number;
  /** Webhook lanes at once (WEBHOOK_CONCURRENCY). */
  webhookConcurrency?: number;
  pollInterval?: number;
  /** How often this process beats and looks for dead workers and stalled runs. */
  maintenanceMs?: number;
  /** A running sync slice silent for this long is taken to be dead (its process was killed). */
  staleRunAfterMs?: number;
  /** A worker silent for this long is dead; its locks are released. */
  deadWorkerAfterMs?: number;
  /** Takeovers of a silent run before it fails as crashed_repeatedly (default DEFAULT_MAX_RESUMES). */
  maxResumes?: number;
}

export interface WorkerHandle {
  /** Runs everything but sync slices (and the crons). */
  runner: Runner;
  /** Runs sync slices only. */
  syncRunner: Runner;
  /** Runs webhook lanes only. */
  webhookRunner: Runner;
  /**
   * The ids of this process's three worker pools, known once startWorker returns: graphile-worker
   * 0.17 writes them in `locked_by` of the jobs and queues they hold, so they tell which jobs this
   * process runs.
   */
  poolIds: ReadonlySet<string>;
  stop(): Promise<void>;
}

/**
 * Jobs that are not sync slices run at once this many at a time. They are short (a drain handles
 * a shard's pending events; a refresh mints the tokens that are due), so a few suffice.
 */
export const URGENT_CONCURRENCY = 4;

function pick(tasks: TaskList, names: readonly string[], keep: boolean): TaskList {
  return Object.fromEntries(Object.entries(tasks).filter(([name]) => names.includes(name) === keep));
}

export async function startWorker(services: Services, opts: WorkerOptions = {}): Promise<WorkerHandle> {
  const workerIds = new Set<string>();
  const poolIds = new Set<string>();
  const events: WorkerEvents = new EventEmitter();
  events.on('worker:create', ({ worker }) => workerIds.add(worker.workerId));
  // graphile-worker 0.17 locks jobs under the pool's id, not the worker's: without beating for
  // it too, this process's own long jobs (a 20 s sync slice) would look dead and be released.
  // run() emits pool:create before it resolves.
  events.on('pool:create', ({ workerPool }) => {
    workerIds.add(workerPool.id);
    poolIds.add(workerPool.id);
  });
  // Two runners, each fetching only its own task identifiers (graphile-worker's get_job filters by
  // the runner's task list): sync slices, which take up to 20 s each and come by the hundred after
  // a burst of installs, fill their own slots, and event drains, token refresh and the scheduler
  // never queue behind them. One shared runner ran them FIFO at one priority.
  let stopping = false;
  const tasks = createTaskList(services, () => stopping);
  // The urgent and webhook runners try again when their get_job misses a waiting job (empty-get-recheck.ts).
  const recheck = new EmptyGetRecheck(
    events,
    (names) => otherJobsWaiting(services.db, names),
    (err) => services.log.warn({ errMessage: (err as Error).message }, 'worker: looking for missed jobs failed'),
  );
  const common = { pgPool: services.pool, pollInterval: opts.pollInterval ?? 2_000, noHandleSignals: true, logger: workerLogger(services), events };
  const syncRunner = await run({
    ...common,
    taskList: pick(tasks, SYNC_TASKS, true),
    crontab: '',
    concurrency: opts.concurrency ?? services.config.workerConcurrency,
  });
  let runner: Runner;
  let webhookRunner: Runner;
  try {
    runner = await recheck.watch(pick(tasks, NOT_URGENT_TASKS, false), (taskList) =>
      run({ ...common, taskList, crontab: opts.cron === false ? '' : CRONTAB, concurrency: opts.urgentConcurrency ?? URGENT_CONCURRENCY }),
    );
  } catch (err) {
    recheck.stop();
    await syncRunner.stop().catch(() => undefined);
    throw err;
  }
  try {
    // Webhook lanes wait on receivers (up to 10 s each): in slots of their own, so a slow
    // receiver never holds up event drains, token refresh or sync slices, and many tenants'
    // lanes deliver at once.
    webhookRunner = await recheck.watch(pick(tasks, WEBHOOK_TASKS, true), (taskList) =>
      run({ ...common, taskList, crontab: '', concurrency: opts.webhookConcurrency ?? services.config.webhookConcurrency }),
    );
  } catch (err) {
    recheck.stop();
    await Promise.all([runner.stop(), syncRunner.stop()]).catch(() => undefined);
    throw err;
  }

  const deadAfter = opts.deadWorkerAfterMs ?? DEAD_AFTER_MS;
  // Slices beat every 5 s; three missed beats mean the process is gone.
  const staleRunAfter = opts.staleRunAfterMs ?? 15_000;
  // Beats on a connection of their own (services.heartbeatDb), on their own timer: a main pool
  // drained by busy slices must not make this process look dead to the other replicas.
  const beat = () => heartbeatWorkers(services.heartbeatDb, workerIds);
  const maintain = async () => {
    const unlocked = await unlockDeadWorkers(services.db, deadAfter);
    if (unlocked.length > 0) services.log.warn({ workerIds: unlocked }, 'released jobs held by dead workers');
    const { resumed, failed } = await services.sync.resumeStaleRuns(staleRunAfter, opts.maxResumes);
    if (resumed.length > 0) services.log.info({ runIds: resumed }, 'resumed sync runs whose process stopped');
    if (failed.length > 0) {
      services.log.error({ runIds: failed.map((f) => f.id) }, 'sync runs whose processes kept dying were failed (crashed_repeatedly), not resumed again');
      for (const f of failed) services.metrics.syncRuns.inc({ module: f.module, status: 'failed', error_class: 'crashed_repeatedly' });
    }
    // Every round, although a busy lane's queue comes back within seconds: every get_job until the
    // next round locks each empty queue's row left behind (job-queues-gc.ts).
    await collectEmptyJobQueues(services.db);
  };
  await beat();
  const every = opts.maintenanceMs ?? 3_000;
  const beatTimer = setInterval(() => {
    beat().catch((err: Error) => services.log.warn({ errMessage: err.message }, 'worker heartbeat failed'));
  }, every);
  const timer = setInterval(() => {
    maintain().catch((err: Error) => services.log.warn({ errMessage: err.message }, 'worker maintenance failed'));
  }, every);
  beatTimer.unref();
  timer.unref();

  return {
    runner,
    syncRunner,
    webhookRunner,
    poolIds,
    async stop() {
      stopping = true;
      recheck.stop();
      clearInterval(timer);
      clearInterval(beatTimer);
      await Promise.all([runner.stop(), syncRunner.stop(), webhookRunner.stop()]);
      await forgetWorkers(services.db, workerIds).catch(() => undefined);
    },
  };
}
