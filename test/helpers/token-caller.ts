/**
 * A separate larksync process for cross-process single-flight tests:
 *   node --import tsx test/helpers/token-caller.ts
 * Environment: the store app's (DATABASE_URL, ENCRYPTION_KEY, LARK_APP_ID, LARK_APP_SECRET,
 * LARK_VERIFICATION_TOKEN, LARK_DOMAIN = simulator URL), plus TENANT_KEY, CALLS (default 100),
 * POOL_MAX (default 10), MINT_LEASE_MS (the token service's mint lease; default its own) and
 * START_AT (epoch ms; when unset, the start time is read as one line from stdin after this
 * process printed {"ready":true}).
 *
 * At START_AT it fires CALLS concurrent getTenantAccessToken calls and prints one JSON line with
 * fingerprints of what each call got, never the tokens themselves.
 */
import { sql } from 'kysely';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/env.js';
import { parseEncryptionKey } from '../../src/crypto/encryption-key.js';
import { Sealer } from '../../src/crypto/sealer.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createServices } from '../../src/services.js';
import { fireAndReport, startTime } from './caller-protocol.js';

export type { CallerReport } from './caller-protocol.js';

async function main(): Promise<void> {
  const tenantKey = process.env.TENANT_KEY;
  if (!tenantKey) throw new Error('TENANT_KEY is required');
  const calls = Number(process.env.CALLS ?? 100);
  const config = loadConfig(process.env);
  const key = parseEncryptionKey(config.encryptionKey ?? '');
  if (!config.databaseUrl || !key) throw new Error('DATABASE_URL and ENCRYPTION_KEY are required');

  // Built the way bootstrap builds it, minus HTTP and the worker.
  const handle = connectDatabase(config.databaseUrl, { max: Number(process.env.POOL_MAX ?? 10), applicationName: 'larksync-token-caller' });
  const mintLeaseMs = process.env.MINT_LEASE_MS ? Number(process.env.MINT_LEASE_MS) : undefined;
  const services = createServices({
    config,
    db: handle.db,
    pool: handle.pool,
    sealer: new Sealer(key),
    log: pino({ level: 'silent' }),
    tokenOptions: mintLeaseMs ? { mintLeaseMs } : undefined,
  });
  try {
    // Open the pool's connections now, so connection set-up does not spread the callers out.
    await Promise.all(Array.from({ length: 5 }, () => sql`select 1`.execute(handle.db)));
    const at = await startTime();
    await fireAndReport(at, calls, () => services.tokens.getTenantAccessToken(tenantKey));
  } finally {
    await handle.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`token-caller failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
