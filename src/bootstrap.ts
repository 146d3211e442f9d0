import { tuneHeap } from './runtime/heap.js';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config/env.js';
import { generateApiToken, generateEncryptionKey, loadOrCreateSecretFile, parseEncryptionKey } from './crypto/encryption-key.js';
import { Sealer } from './crypto/sealer.js';
import { connectPools, type DbPools } from './db/connect.js';
import { DEFAULT_EMBEDDED_PG_PORT, startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { migrateToLatest } from './db/migrate.js';
import { findApp } from './apps/apps.repository.js';
import { toCredentials } from './apps/app-credentials.js';
import { createServices, type ServiceDeps, type Services } from './services.js';
import { startWorker, type WorkerHandle, type WorkerOptions } from './worker/worker.js';
import { RESEAL_TASK } from './worker/tasks.js';
import { checkEncryptionCanary } from './keys/canary.js';

export interface Larksync {
  app: FastifyInstance;
  services: Services;
  worker: WorkerHandle | undefined;
  url: string;
  /** Stops accepting requests, finishes in-flight ones, stops the worker, closes the database. */
  stop(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
  listen?: boolean;
  worker?: boolean;
  ticketOptions?: ServiceDeps['ticketOptions'];
  tokenOptions?: ServiceDeps['tokenOptions'];
  workerPollInterval?: number;
  workerOptions?: WorkerOptions;
  engineOptions?: ServiceDeps['engineOptions'];
  webhookOptions?: ServiceDeps['webhookOptions'];
  sinkOptions?: ServiceDeps['sinkOptions'];
  rateLimitScale?: number;
  subscriptionOptions?: ServiceDeps['subscriptionOptions'];
}

/** Starts larksync: database (embedded when DATABASE_URL is unset), migrations, HTTP app, worker. */
export async function startLarksync(config: Config, opts: StartOptions): Promise<Larksync> {
  const { log } = opts;
  tuneHeap(config.heapGrowingPercent);
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort ?? DEFAULT_EMBEDDED_PG_PORT, {
      tcp: config.embeddedPgPort !== undefined,
    });
    databaseUrl = embedded.url;
    log.info(
      { dataDir: embedded.dataDir, tcpPort: embedded.tcpPort ?? null, reusedRunningServer: embedded.reused },
      'DATABASE_URL is not set: using an embedded PostgreSQL that keeps its data under the data directory',
    );
  }
  if (config.databaseUrl && config.storeApp && !config.storeApp.encryptKey) {
    log.warn(
      'LARK_ENCRYPT_KEY is not set: Lark pushes are believed on the verification token in their body alone (no signature), so anyone who sees one push can forge others; set the Encrypt Key from the developer console',
    );
  }

  const sealer = await createSealer(config, log);
  const apiToken = config.apiToken ?? (embedded ? await embeddedApiToken(config, log) : undefined);
  if (!apiToken) log.warn('API_TOKEN is not set: the REST API answers 503 until it is');
  const effective: Config = { ...config, apiToken };

  let db: DbPools | undefined;
  let worker: WorkerHandle | undefined;
  let app: FastifyInstance | undefined;
  try {
    db = connectPools(databaseUrl, { namedStatements: config.namedStatements });
    const applied = await migrateToLatest(db.main.db, databaseUrl);
    if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
    // Before anything is sealed or opened: a wrong key stops here, naming ENCRYPTION_KEY.
    await checkEncryptionCanary(db.main.db, sealer);

    const services = createServices({
      config: effective,
      db: db.main.db,
      pool: db.main.pool,
      ingestPool: db.ingest.pool,
      heartbeatDb: db.heartbeat.db,
      sealer,
      log,
      ticketOptions: opts.ticketOptions,
      tokenOptions: opts.tokenOptions,
      engineOptions: opts.engineOptions,
      webhookOptions: opts.webhookOptions,
      sinkOptions: opts.sinkOptions,
      rateLimitScale: opts.rateLimitScale,
      subscriptionOptions: opts.subscriptionOptions,
    });
    await services.apps.ensureStoreApp();
    app = await buildApp(services);
    if (opts.worker !== false) {
      worker = await startWorker(services, { pollInterval: opts.workerPollInterval, ...opts.workerOptions });
      if (config.retiredEncryptionKeys.length > 0) await queueReseal(services);
    }

    let url = '';
    if (opts.listen !== false) {
      url = await app.listen({ port: config.port, host: config.host });
    } else {
      await app.ready();
    }
    void requestTicketIfMissing(services);

    const handle = db;
    const started = app;
    return {
      app: started,
      services,
      worker,
      url,
      async stop() {
        await started.close();
        services.events.flushLog();
        await worker?.stop().catch(() => undefined);
        services.webhookDispatcher.close();
        await handle.close();
        await embedded?.stop().catch(() => undefined);
      },
    };
  } catch (err) {
    await app?.close().catch(() => undefined);
    await worker?.stop().catch(() => undefined);
    await db?.close().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
    throw err;
  }
}

export async function createSealer(config: Config, log: Logger): Promise<Sealer> {
  const retired = config.retiredEncryptionKeys.map((k) => parseEncryptionKey(k)).filter((k): k is Buffer => k !== undefined);
  if (config.encryptionKey) {
    const key = parseEncryptionKey(config.encryptionKey);
    if (!key) throw new Error('ENCRYPTION_KEY: expected a 32-byte key as base64 or 64 hex characters');
    return new Sealer(key, retired);
  }
  const file = await loadOrCreateSecretFile(config.dataDir, 'encryption.key', generateEncryptionKey, (v) => parseEncryptionKey(v) !== undefined);
  log.info({ file: file.file, created: file.created }, 'ENCRYPTION_KEY is not set: using the key kept in the data directory');
  return new Sealer(parseEncryptionKey(file.value) as Buffer, retired);
}

async function embeddedApiToken(config: Config, log: Logger): Promise<string> {
  const file = await loadOrCreateSecretFile(config.dataDir, 'api-token', generateApiToken, (v) => v.length >= 16);
  log.info({ file: file.file, created: file.created }, 'API_TOKEN is not set: the REST API token is kept in this file');
  return file.value;
}

/**
 * With retired keys configured, a key rotation is under way: re-seal everything under the current
 * key once (the job key makes the replicas starting together queue one job), after which the
 * retired keys can go.
 */
async function queueReseal(services: Services): Promise<void> {
  await sql`select graphile_worker.add_job(${RESEAL_TASK}, '{}'::json, job_key := ${RESEAL_TASK}, max_attempts := 3)`.execute(services.db);
}

/** A fresh store app has no ticket until Lark pushes one; ask for it at once instead of waiting up to an hour. */
async function requestTicketIfMissing(services: Services): Promise<void> {
  const store = services.config.storeApp;
  if (!store) return;
  try {
    if (await services.tickets.has(store.appId)) return;
    const row = await findApp(services.db, store.appId);
    if (row) await services.tickets.requestResend(toCredentials(row, services.sealer), 'startup');
  } catch (err) {
    services.log.warn({ err: (err as Error).message }, 'could not request an app_ticket at startup');
  }
}
