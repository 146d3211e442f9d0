import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startLarksync, type Larksync, type StartOptions } from '../../src/bootstrap.js';
import { loadConfig, type Config } from '../../src/config/env.js';
import { LOG_SERIALIZERS, REDACT_PATHS } from '../../src/logger.js';
import { LarkSimulator, type SimulatorOptions } from '../../simulator/lark-simulator.js';
import { SimData, type DataApiOptions } from '../../simulator/data/index.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

export const STORE_APP = {
  appId: 'cli_store_test_0001',
  appSecret: 'store-secret-value-do-not-log',
  verificationToken: 'vtok-test-verification',
  encryptKey: 'encrypt-key-test-001',
};

export interface Stack {
  sim: LarkSimulator;
  /** The simulator's data APIs (contact, approval, bitable, attendance). */
  data: SimData;
  larksync: Larksync;
  db: TestDatabase;
  config: Config;
  env: Record<string, string>;
  /** Every log line larksync wrote, for "no secret in logs" checks. */
  logs: string[];
  eventsUrl: string;
  api(method: string, path: string, body?: unknown, token?: string): Promise<Response>;
  /** Starts another larksync on the same database (a second replica). */
  startReplica(opts?: Partial<StartOptions>): Promise<Larksync>;
  stop(): Promise<void>;
}

export interface StackOptions {
  encrypt?: boolean;
  sim?: SimulatorOptions;
  env?: Record<string, string>;
  start?: Partial<StartOptions>;
  /** Reuse a database (e.g. to restart on the same data). */
  db?: TestDatabase;
  data?: DataApiOptions;
}

export function memoryLogger(lines: string[]) {
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' }, serializers: LOG_SERIALIZERS }, stream);
}

/** A simulator (not started yet) that knows the test store app. */
export function storeAppSimulator(opts: { encrypt?: boolean; sim?: SimulatorOptions } = {}): LarkSimulator {
  const sim = new LarkSimulator({ resendPushDelayMs: 0, ...opts.sim });
  sim.addApp({
    appId: STORE_APP.appId,
    appSecret: STORE_APP.appSecret,
    kind: 'store',
    verificationToken: STORE_APP.verificationToken,
    encryptKey: opts.encrypt === false ? undefined : STORE_APP.encryptKey,
  });
  return sim;
}

/** Waits until larksync is ready: the app_ticket it asked for at startup has arrived. */
export async function whenReady(stack: Stack, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => (await fetch(`${stack.larksync.url}/readyz`)).status === 200, timeoutMs, 'readiness (an app_ticket)');
}

/** Installs the store app for a tenant (Lark pushes app_open) and waits until larksync knows it. */
export async function openTenant(stack: Stack, tenantKey: string): Promise<void> {
  await stack.sim.appOpen(STORE_APP.appId, tenantKey);
  await waitFor(() => stack.larksync.services.tenants.get(tenantKey), 10_000, `tenant ${tenantKey}`);
}

/** A whole larksync (HTTP + worker) on its own database, wired to a fresh Lark simulator. */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const sim = storeAppSimulator(opts);
  const data = new SimData(sim, opts.data);
  const simUrl = await sim.start();
  const db = opts.db ?? (await createTestDatabase());
  // Known before larksync starts, so the ticket it asks for at startup is pushed to it.
  const port = await freePort();
  sim.setEventUrl(STORE_APP.appId, `http://127.0.0.1:${port}/lark/events`);
  // Lark sends a signed-in user back only to a redirect URL the app lists (auth.md §5.1).
  const publicUrl = `http://127.0.0.1:${port}`;
  sim.setRedirectUris(STORE_APP.appId, [`${publicUrl}/auth/lark/callback`]);
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    API_TOKEN: 'api-token-for-tests-0001',
    LARK_APP_ID: STORE_APP.appId,
    LARK_APP_SECRET: STORE_APP.appSecret,
    LARK_VERIFICATION_TOKEN: STORE_APP.verificationToken,
    ...(opts.encrypt === false ? {} : { LARK_ENCRYPT_KEY: STORE_APP.encryptKey }),
    LARK_DOMAIN: simUrl,
    // The simulator runs on 127.0.0.1 over http, which production (DATABASE_URL set) refuses by default.
    ALLOW_PRIVATE_LARK_DOMAINS: '1',
    // Test receivers listen on 127.0.0.1 over http.
    ALLOW_PRIVATE_WEBHOOKS: '1',
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    PUBLIC_URL: publicUrl,
    ...opts.env,
  };
  const config = loadConfig(env);
  const logs: string[] = [];
  const startOpts: StartOptions = {
    log: memoryLogger(logs),
    workerPollInterval: 200,
    // A cron firing at a minute boundary would add runs and mints that tests did not ask for.
    workerOptions: { cron: false },
    ticketOptions: { waitMs: 3_000, pollMs: 25, resendCooldownMs: 2_000 },
    ...opts.start,
  };
  const larksync = await startLarksync(config, startOpts);
  const eventsUrl = `${larksync.url}/lark/events`;
  const replicas: Larksync[] = [];

  return {
    sim,
    data,
    larksync,
    db,
    config,
    env,
    logs,
    eventsUrl,
    api: (method, path, body, token = env.API_TOKEN) =>
      fetch(`${larksync.url}${path}`, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    async startReplica(extra = {}) {
      const replica = await startLarksync({ ...config, port: 0 }, { ...startOpts, ...extra });
      replicas.push(replica);
      return replica;
    },
    async stop() {
      for (const r of replicas) await r.stop().catch(() => undefined);
      await larksync.stop().catch(() => undefined);
      await sim.stop().catch(() => undefined);
      if (!opts.db) await db.drop().catch(() => undefined);
    },
  };
}
