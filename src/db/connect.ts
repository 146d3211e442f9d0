import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './database.js';
import { StatementNames, namingClient } from './statement-names.js';

// int8 (counts, bigserial ids) arrives as a string from pg; keep it that way on purpose
// (ids can exceed 2^53) and cast counts in SQL where numbers are wanted.

export interface DbHandle {
  db: Kysely<Database>;
  pool: pg.Pool;
  close(): Promise<void>;
}

export function connectDatabase(connectionString: string, opts: { max?: number; applicationName?: string; namedStatements?: boolean } = {}): DbHandle {
  const pool = new pg.Pool({
    connectionString,
    max: opts.max ?? 20,
    application_name: opts.applicationName ?? 'larksync',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // Repeated queries go as named statements: parsed and planned once per connection.
    ...(opts.namedStatements === false ? {} : { Client: namingClient(new StatementNames()) }),
  });
  // An idle client losing its server must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    pool,
    async close() {
      await db.destroy();
    },
  };
}

/**
 * The connection budgets of one process. The main pool serves the REST API, the worker's jobs and
 * their sync slices; under load it runs dry. Two paths must not wait for it:
 * - `ingest`: POST /lark/events stores pushes on its own connections, or a busy worker pool would
 *   make Lark's 3 s budget run out (pg-pool waits up to 5 s for a connection). The group commit
 *   keeps one transaction in flight, so two connections leave one spare.
 * - `heartbeat`: the worker's heartbeats, so busy slices cannot make this process look dead to the
 *   other replicas (which would then release its jobs and re-lease its runs).
 */
export interface DbPools {
  main: DbHandle;
  ingest: DbHandle;
  heartbeat: DbHandle;
  close(): Promise<void>;
}

export const INGEST_POOL_SIZE = 2;

export function connectPools(connectionString: string, opts: { max?: number; namedStatements?: boolean } = {}): DbPools {
  const { namedStatements } = opts;
  const main = connectDatabase(connectionString, { max: opts.max, namedStatements });
  const ingest = connectDatabase(connectionString, { max: INGEST_POOL_SIZE, applicationName: 'larksync-ingest', namedStatements });
  const heartbeat = connectDatabase(connectionString, { max: 1, applicationName: 'larksync-heartbeat', namedStatements });
  return {
    main,
    ingest,
    heartbeat,
    async close() {
      await Promise.all([main.close(), ingest.close(), heartbeat.close()]);
    },
  };
}
