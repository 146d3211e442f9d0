/**
 * Entry point of a larksync child process with tuned start options (worker maintenance, engine
 * heartbeat, pacing), for tests that kill processes and need a resume in seconds rather than the
 * production defaults' ~16 s. Otherwise it is src/server.ts: same config loading, same bootstrap,
 * same 'larksync is listening' line, same graceful stop on SIGTERM. It also logs its worker pool
 * id once it starts a job ('test: worker pool').
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
// to a process; announcing it lets a test tell which process holds which job.
let announced = false;
larksync.worker?.runner.events.on('job:start', ({ worker }) => {
  if (announced) return;
  announced = true;
  log.info({ poolId: worker.workerPool.id }, 'test: worker pool');
});
closeWithGrace({ delay: 20_000 }, async () => {
  await larksync.stop();
});
