/**
 * Entry point of a larksync child process with tuned start options (worker maintenance, engine
 * heartbeat, pacing), for tests that kill processes and need a resume in seconds rather than the
 * production defaults' ~16 s. Otherwise it is src/server.ts: same config loading, same bootstrap,
 * same 'larksync is listening' line, same graceful stop on SIGTERM. It also logs its worker pool
 * ids, each once it starts a job ('test: worker pool').
 *
 * The options arrive as JSON in LARKSYNC_CHILD_START (see ChildStartOptions).
 */
import closeWithGrace from 'close-with-grace';
import { loadConfig } from '../../src/config/env.js';
import { createLogger } from '../../src/logger.js';
import { startLarksync } from '../../src/bootstrap.js';
import type { ChildStartOptions } from './larksync-process.js';

const tuned = JSON.parse(process.env.LARKSYNC_CHILD_START ?? '{}') as ChildStartOptions;
const config = loadConfig();
const log = createLogger(config.logLevel);
const larksync = await startLarksync(config, { log, ...tuned });
log.info({ url: larksync.url, pid: process.pid }, 'larksync is listening');
// graphile-worker locks jobs and queues under its pool's id, which nothing in the database ties
// to a process; announcing it lets a test tell which process holds which job. Each runner (sync
// slices, urgent jobs, webhook lanes) has a pool of its own, and the three share one events
// emitter: every pool is announced on its first job. Announcing only the process's first job
// named the urgent pool whenever that job was not a sync slice (an event drain, the startup
// reseal), and from then on the process's sync slices were never seen as its own: a test that
// kills whoever holds a run could watch the run finish in that process unkilled.
const announced = new Set<string>();
larksync.worker?.runner.events.on('job:start', ({ worker, job }) => {
  if (announced.has(worker.workerPool.id)) return;
  announced.add(worker.workerPool.id);
  log.info({ poolId: worker.workerPool.id, task: job.task_identifier }, 'test: worker pool');
});
closeWithGrace({ delay: 20_000 }, async () => {
  await larksync.stop();
});
