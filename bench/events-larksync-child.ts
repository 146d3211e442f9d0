/**
 * Event-ingest subject: larksync as `npm start` runs it (same config, logger and app), with the
 * worker off so the figure is the acknowledgement path alone: verify, decrypt, seal, store and
 * queue each push durably before answering. Env: larksync's own variables.
 */
import { loadConfig } from '../src/config/env.js';
import { createLogger } from '../src/logger.js';
import { startLarksync } from '../src/bootstrap.js';
import { serveParent } from './child-ipc.js';
import { pino } from 'pino';

const config = loadConfig();
// Logs are formatted and written as in production, to /dev/null rather than a pipe the parent
// would have to drain.
const log = createLogger(config.logLevel, pino.destination({ dest: '/dev/null', sync: false }));
const larksync = await startLarksync(config, { log, worker: false });
serveParent({ url: async () => larksync.url }, () => larksync.stop());
