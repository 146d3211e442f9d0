import type { TaskList, WorkerEvents, WorkerPool } from 'graphile-worker';

/**
 * Delays of the checks after a worker of a watched runner came back from get_job with nothing,
 * each one longer while the checks find a job waiting that the nudged get_job still misses; past
 * the last, the runner's poll (pollInterval, 2 s) takes over.
 */
export const RECHECK_DELAYS_MS: readonly number[] = [20, 40, 80, 160, 320];

interface Watched {
  /** the runner's task identifiers */
  tasks: readonly string[];
  /** checks since a job of this runner last started or a check last found none waiting */
  step: number;
  timer: NodeJS.Timeout | undefined;
  /** the check has begun (its timer fired) */
  checking: boolean;
}

/**
 * Gives a runner whose get_job came back empty while one of its jobs was waiting another try,
 * instead of leaving the job to the runner's next poll.
 *
 * Why: graphile-worker 0.17's get_job first locks the row of every named queue nobody holds
 * (`for update skip locked`, its "strategy 2"), then picks a job from those queues. Two get_job
 * calls at once skip each other's locked rows, so the later one comes back empty although a job
 * waits in a free queue. A "job added" notification nudges an idle worker of each of this
 * process's three runners (slices, urgent jobs, webhook lanes) at the same instant, and only one
 * of the three get_job calls sees the queues: when it is not the runner the job is for, that
 * runner's worker sleeps until the next notification or poll. An event shard's queue is woken once
 * until its drain runs (later events queue no job), so no later notification comes for it. In
 * `npm run bench -- realtime` at 20 changes/s, every shard's events waited 0.8 to 2 s this way a
 * few times a minute, with graphile-worker's jobs table showing drains due and unlocked, in free
 * queues, for up to 2 s.
 *
 * So after an empty get_job of a watched runner, one check (a plain select, no locks) a few ms
 * later asks whether a job of that runner waits in a free queue; if one does, the runner nudges an
 * idle worker again. One check per runner at a time; each further check while jobs keep being
 * missed waits twice as long (RECHECK_DELAYS_MS), and a job starting or a check finding none
 * starts the series anew. The slices' runner is not watched: its jobs take seconds, and it looks
 * for waiting jobs itself (slice-turns.ts).
 */
export class EmptyGetRecheck {
  private readonly watched = new Map<WorkerPool, Watched>();
  private creating: Watched | undefined;
  private stopped = false;

  /**
   * `waiting` tells whether a job of the given tasks is ready to run and could be taken now
   * (otherJobsWaiting, slice-turns.ts).
   */
  constructor(
    events: WorkerEvents,
    private readonly waiting: (tasks: readonly string[]) => Promise<boolean>,
    private readonly onError: (err: unknown) => void,
    private readonly delaysMs: readonly number[] = RECHECK_DELAYS_MS,
  ) {
    events.on('pool:create', ({ workerPool }) => {
      if (this.creating) this.watched.set(workerPool, this.creating);
    });
    events.on('worker:getJob:empty', ({ worker }) => this.empty(worker.workerPool));
    // A job started: the series starts anew, and a check not yet made is dropped, since the
    // worker looks for its next job itself when this one ends. Under load, where a runner's workers
    // start jobs every few ms, this leaves few checks to make.
    events.on('job:start', ({ worker }) => {
      const w = this.watched.get(worker.workerPool);
      if (!w) return;
      w.step = 0;
      if (w.timer !== undefined && !w.checking) {
        clearTimeout(w.timer);
        w.timer = undefined;
      }
    });
  }

  /**
   * Creates a runner (graphile-worker's run()) of the given task list whose pool is watched. The
   * pool is created inside run(), so runners are created one at a time.
   */
  async watch<T>(taskList: TaskList, create: (taskList: TaskList) => Promise<T>): Promise<T> {
    this.creating = { tasks: Object.keys(taskList), step: 0, timer: undefined, checking: false };
    try {
      return await create(taskList);
    } finally {
      this.creating = undefined;
    }
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watched.values()) clearTimeout(w.timer);
  }

  private empty(pool: WorkerPool): void {
    const w = this.watched.get(pool);
    if (!w || w.timer !== undefined || this.stopped) return;
    const delay = this.delaysMs[w.step];
    if (delay === undefined) return;
    w.step += 1;
    w.timer = setTimeout(() => {
      w.checking = true;
      void this.check(pool, w).finally(() => {
        w.checking = false;
        w.timer = undefined;
      });
    }, delay);
    w.timer.unref();
  }

  private async check(pool: WorkerPool, w: Watched): Promise<void> {
    if (this.stopped || pool._shuttingDown) return;
    try {
      if (!(await this.waiting(w.tasks))) {
        w.step = 0;
        return;
      }
      // An idle worker, if there is one, calls get_job at once; busy ones call it when they finish.
      if (!this.stopped && !pool._shuttingDown) pool.nudge(1);
    } catch (err) {
      // After stop() the database may be closing under a check in flight: nothing to report.
      if (!this.stopped) this.onError(err);
    }
  }
}
