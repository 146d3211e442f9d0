/**
 * `npm run reseal` (in the image: `node dist/src/keys/reseal-cli.js`): re-seals every sealed value
 * under the current ENCRYPTION_KEY, using the same environment as larksync, and prints what it did.
 * Exit code 0: nothing is left under another key, so ENCRYPTION_KEYS_RETIRED can be emptied once
 * every replica runs with the current key. Exit code 2: some values open with none of the keys.
 */
import { ConfigError, loadConfig } from '../config/env.js';
import { createLogger } from '../logger.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`larksync reseal: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

const { createSealer } = await import('../bootstrap.js');
const { connectDatabase } = await import('../db/connect.js');
const { DEFAULT_EMBEDDED_PG_PORT, startEmbeddedPostgres } = await import('../db/embedded.js');
const { migrateToLatest } = await import('../db/migrate.js');
const { checkEncryptionCanary } = await import('./canary.js');
const { resealAll } = await import('./reseal.js');

const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
// Embedded mode: a larksync already running keeps its server, which this reuses.
const embedded = config.databaseUrl
  ? undefined
  : await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort ?? DEFAULT_EMBEDDED_PG_PORT, { tcp: config.embeddedPgPort !== undefined });
const url = config.databaseUrl ?? (embedded?.url as string);
const handle = connectDatabase(url, { max: 2, applicationName: 'larksync-reseal' });
let code = 0;
try {
  await migrateToLatest(handle.db, url);
  const sealer = await createSealer(config, log);
  await checkEncryptionCanary(handle.db, sealer);
  const counts = await resealAll(handle.db, sealer);
  for (const c of counts) process.stdout.write(`${c.table}: ${c.resealed} re-sealed, ${c.unreadable} unreadable\n`);
  const unreadable = counts.reduce((n, c) => n + c.unreadable, 0);
  if (unreadable > 0) {
    process.stdout.write(`${unreadable} values open with none of the configured keys: keep ENCRYPTION_KEYS_RETIRED as it is\n`);
    code = 2;
  } else {
    process.stdout.write('every sealed value is under the current ENCRYPTION_KEY\n');
  }
} catch (err) {
  process.stderr.write(`larksync reseal: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  code = 1;
} finally {
  await handle.close();
  await embedded?.stop().catch(() => undefined);
}
process.exit(code);
