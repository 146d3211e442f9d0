import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig } from './config/env.js';
import { createLogger } from './logger.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    // One line naming the variable and what it expects; never its value.
    process.stderr.write(`larksync: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

const log = createLogger(config.logLevel);
try {
  // Loaded only once the configuration is known to be good, so a bad one fails in a blink
  // instead of after loading the whole app.
  const { startLarksync } = await import('./bootstrap.js');
  const larksync = await startLarksync(config, { log });
  log.info({ url: larksync.url, storeApp: config.storeApp ? config.storeApp.appId : null }, 'larksync is listening');
  closeWithGrace({ delay: 20_000 }, async ({ signal, err }) => {
    if (err) log.error({ errName: err.name, errMessage: err.message }, 'shutting down after an error');
    else log.info({ signal }, 'shutting down: finishing in-flight requests');
    await larksync.stop();
  });
} catch (err) {
  if (err instanceof ConfigError) {
    // Found only once the database answered (a wrong ENCRYPTION_KEY): the same one line as above.
    process.stderr.write(`larksync: ${err.message}\n`);
    process.exit(1);
  }
  log.fatal({ errMessage: (err as Error).message }, 'larksync failed to start');
  process.exit(1);
}
