/**
 * A separate larksync process for cross-process user-token tests:
 *   node --import tsx test/helpers/grant-caller.ts
 * Environment: the store app's (see token-caller.ts), plus TENANT_KEY, OPEN_ID, CALLS (default
 * 100), POOL_MAX (default 10), GRANT_LEASE_MS (the refresh claim's length) and START_AT (else the
 * start time is read from stdin after {"ready":true}). At the start time it fires CALLS concurrent
 * user-token lookups for the grant and prints one JSON report of fingerprints, never tokens.
 */
import { sql } from 'kysely';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/env.js';
import { parseEncryptionKey } from '../../src/crypto/encryption-key.js';
import { Sealer } from '../../src/crypto/sealer.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createServices } from '../../src/services.js';
import { fireAndReport, startTime } from './caller-protocol.js';

async function main(): Promise<void> {
  const tenantKey = process.env.TENANT_KEY;
  const openId = process.env.OPEN_ID;
  if (!tenantKey || !openId) throw new Error('TENANT_KEY and OPEN_ID are required');
  const config = loadConfig(process.env);
  const key = parseEncryptionKey(config.encryptionKey ?? '');
  if (!config.databaseUrl || !key || !config.storeApp) throw new Error('DATABASE_URL, ENCRYPTION_KEY and the store app are required');
  const handle = connectDatabase(config.databaseUrl, { max: Number(process.env.POOL_MAX ?? 10), applicationName: 'larksync-grant-caller' });
  const services = createServices({
    config,
    db: handle.db,
    pool: handle.pool,
    sealer: new Sealer(key),
    log: pino({ level: 'silent' }),
    grantOptions: process.env.GRANT_LEASE_MS ? { refreshLeaseMs: Number(process.env.GRANT_LEASE_MS) } : undefined,
  });
  const grant = { appId: config.storeApp.appId, tenantKey, openId };
  try {
    await Promise.all(Array.from({ length: 5 }, () => sql`select 1`.execute(handle.db)));
    const at = await startTime();
    await fireAndReport(at, Number(process.env.CALLS ?? 100), () => services.grants.token(grant));
  } finally {
    await handle.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`grant-caller failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
