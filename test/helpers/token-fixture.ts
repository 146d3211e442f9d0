import { createHash, randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { Clock } from '../../src/clock.js';
import { loadConfig, type Config } from '../../src/config/env.js';
import { parseEncryptionKey } from '../../src/crypto/encryption-key.js';
import { Sealer } from '../../src/crypto/sealer.js';
import { connectDatabase, type DbHandle } from '../../src/db/connect.js';
import { createServices, type ServiceDeps, type Services } from '../../src/services.js';
import type { LarkSimulator, SimulatorOptions } from '../../simulator/lark-simulator.js';
import { countingKysely, createTestDatabase, type TestDatabase } from './db.js';
import { STORE_APP, storeAppSimulator } from './stack.js';

/** The store app's environment, as a larksync process (or a child test process) would see it. */
export function storeAppEnv(db: TestDatabase, simUrl: string, encryptionKey: string): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    ENCRYPTION_KEY: encryptionKey,
    LARK_APP_ID: STORE_APP.appId,
    LARK_APP_SECRET: STORE_APP.appSecret,
    LARK_VERIFICATION_TOKEN: STORE_APP.verificationToken,
    LARK_ENCRYPT_KEY: STORE_APP.encryptKey,
    LARK_DOMAIN: simUrl,
    // The simulator runs on 127.0.0.1 over http, which production (DATABASE_URL set) refuses by default.
    ALLOW_PRIVATE_LARK_DOMAINS: '1',
    LOG_LEVEL: 'silent',
  };
}

/** Services the way bootstrap builds them, minus HTTP and the worker. */
export function buildServices(
  config: Config,
  handle: DbHandle,
  opts: { log?: Logger; ticketOptions?: ServiceDeps['ticketOptions']; tokenOptions?: ServiceDeps['tokenOptions'] } = {},
): Services {
  const key = parseEncryptionKey(config.encryptionKey ?? '');
  if (!key) throw new Error('token fixture: ENCRYPTION_KEY did not parse');
  return createServices({
    config,
    db: handle.db,
    pool: handle.pool,
    sealer: new Sealer(key),
    log: opts.log ?? pino({ level: 'silent' }),
    ticketOptions: opts.ticketOptions,
    tokenOptions: opts.tokenOptions,
  });
}

/**
 * Services as bootstrap builds them over the fixture's database, through a Kysely that records
 * every statement matching `pattern` (countingKysely): what a test counts the round trips of.
 */
export function countingServices(f: Pick<TokenFixture, 'config' | 'db'>, pattern: RegExp): { services: Services; seen: string[] } {
  const counted = countingKysely(f.db, pattern);
  return { services: buildServices(f.config, { db: counted.db, pool: f.db.pool, close: async () => undefined }), seen: counted.seen };
}

export interface TokenFixture {
  sim: LarkSimulator;
  db: TestDatabase;
  env: Record<string, string>;
  config: Config;
  services: Services;
  appId: string;
  /** Issues a ticket in the simulator and stores it the way the app_ticket handler does. */
  seedTicket(): Promise<string>;
  /** A tenant that installed the store app, both upstream and in our tenants table. */
  installTenant(tenantKey: string): Promise<void>;
  /** A second, independent set of services (own pool) on the same database: a restart or another replica. */
  restart(opts?: { poolMax?: number }): Promise<{ services: Services; close(): Promise<void> }>;
  stop(): Promise<void>;
}

export interface TokenFixtureOptions {
  sim?: SimulatorOptions;
  ticketOptions?: ServiceDeps['ticketOptions'];
  tokenOptions?: ServiceDeps['tokenOptions'];
  /** One clock for larksync's token code and the simulator's token model (a simulated one moves both). */
  clock?: Clock;
}

/**
 * A store app registered in a fresh database, a running simulator, and larksync's services wired
 * to both, without the HTTP server (token tests drive the services directly).
 */
export async function startTokenFixture(opts: TokenFixtureOptions = {}): Promise<TokenFixture> {
  const clock = opts.clock;
  const sim = storeAppSimulator({ sim: clock ? { ...opts.sim, clock: () => clock.now().getTime() } : opts.sim });
  const simUrl = await sim.start();
  const db = await createTestDatabase();
  const env = storeAppEnv(db, simUrl, randomBytes(32).toString('base64'));
  const config = loadConfig(env);
  const tokenOptions = clock ? { ...opts.tokenOptions, clock } : opts.tokenOptions;
  const build = (handle: DbHandle) => buildServices(config, handle, { ticketOptions: opts.ticketOptions, tokenOptions });
  const services = build(db);
  await services.apps.ensureStoreApp();
  const extra: DbHandle[] = [];

  return {
    sim,
    db,
    env,
    config,
    services,
    appId: STORE_APP.appId,
    async seedTicket() {
      const ticket = sim.issueTicket(STORE_APP.appId);
      await services.tickets.save(STORE_APP.appId, ticket, new Date(), null);
      return ticket;
    },
    async installTenant(tenantKey) {
      sim.installTenant(STORE_APP.appId, tenantKey);
      await services.tenants.install({ tenantKey, appId: STORE_APP.appId }, null);
    },
    async restart(restartOpts = {}) {
      const handle = connectDatabase(db.url, { max: restartOpts.poolMax ?? 10, applicationName: 'larksync-test-replica' });
      extra.push(handle);
      return { services: build(handle), close: () => handle.close() };
    },
    async stop() {
      for (const h of extra) await h.close().catch(() => undefined);
      await sim.stop().catch(() => undefined);
      await db.drop().catch(() => undefined);
    },
  };
}

/** Every row of every table the database holds (graphile-worker's too), as text; bytea shows as \x hex. */
export async function dumpDatabase(db: TestDatabase): Promise<string> {
  const client = await db.pool.connect();
  try {
    const tables = await client.query<{ name: string }>(
      `select quote_ident(table_schema) || '.' || quote_ident(table_name) as name from information_schema.tables
        where table_schema not in ('pg_catalog', 'information_schema') and table_type = 'BASE TABLE'`,
    );
    const parts: string[] = [];
    for (const { name } of tables.rows) {
      const rows = await client.query<{ row: string }>(`select t::text as row from ${name} t`);
      parts.push(`${name}: ${rows.rows.map((r) => r.row).join('\n')}`);
    }
    return parts.join('\n');
  } finally {
    client.release();
  }
}

/** A short, non-reversible stand-in for a token in assertions, so a failing test never prints the token itself. */
export function fp(value: string | undefined): string {
  return value === undefined ? '<none>' : `sha256:${createHash('sha256').update(value).digest('hex').slice(0, 12)}`;
}

/** Names of the secrets found in `haystack`, as text, lowercase hex of their UTF-8 bytes, or base64. */
export function leakedSecrets(haystack: string, secrets: Record<string, string>): string[] {
  const lower = haystack.toLowerCase();
  return Object.entries(secrets)
    .filter(([, value]) => {
      const bytes = Buffer.from(value, 'utf8');
      return (
        haystack.includes(value) ||
        lower.includes(bytes.toString('hex')) ||
        haystack.includes(bytes.toString('base64').replace(/=+$/, ''))
      );
    })
    .map(([name]) => name);
}
