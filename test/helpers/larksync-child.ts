/**
 * Entry point of a larksync child process with tuned start options (worker maintenance, engine
 * heartbeat, pacing), for tests that kill processes and need a resume in seconds rather than the
 * production defaults' ~16 s. Otherwise it is src/server.ts: same config loading, same bootstrap,
 * same 'larksync is listening' line, same graceful stop on SIGTERM. It also logs its worker pool
 * ids once started ('test: worker pools').
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
// graphile-worker locks jobs and queues under its pools' ids, which nothing in the database ties
// to a process; announcing them lets a test tell which process holds which job. All three pools
// (sync slices, urgent jobs, webhook lanes) are announced before 'larksync is listening', so a
// test knows them as soon as it knows the process. The sync runner takes a waiting job the moment
// it starts, while the rest of the start goes on: a job:start listener attached after the start
// (as this file had) missed that job, whose slices could then run one after another unseen.
log.info({ poolIds: [...(larksync.worker?.poolIds ?? [])] }, 'test: worker pools');
log.info({ url: larksync.url, pid: process.pid }, 'larksync is listening');
closeWithGrace({ delay: 20_000 }, async () => {
  await larksync.stop();
});
