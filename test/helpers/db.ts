import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { connectDatabase, type DbHandle } from '../../src/db/connect.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { Kysely, PostgresDialect } from 'kysely';
import type { Database } from '../../src/db/database.js';
import type { StreamTableBase } from '../../src/sync/sync.tables.js';

/**
 * Stream tables typed for a test's queries. The app's Database type leaves them out: they are
 * declared by modules at run time (STREAM_CATALOG) and read and written through sql.table.
 */
export const streamTables = (db: Kysely<Database>) => db as unknown as Kysely<Record<string, StreamTableBase & Record<string, unknown>>>;

export interface TestDatabase extends DbHandle {
  url: string;
  name: string;
  /** Drops the database after closing this handle (call from afterAll). */
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A fresh, migrated database for one test file, on the server resolved by global-setup. */
export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const admin = inject('adminDatabaseUrl');
  const name = `larksync_t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`create database ${name}`);
  // The feed horizon exactly at every read, as before its lookup was made lazy (migration
  // 2026_12_13_0900): the files run side by side on one server and read their feeds right after
  // writing, where another file's open transaction could hold a session's horizon for 100 ms.
  await client.query(`alter database ${name} set larksync.feed_horizon_check_ms = 0`);
  await client.end();
  const url = withDatabase(admin, name);
  const handle = connectDatabase(url, { max: 10, applicationName: 'larksync-test' });
  if (opts.migrate !== false) await migrateToLatest(handle.db, url);
  return {
    ...handle,
    url,
    name,
    async drop() {
      await handle.close().catch(() => undefined);
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/**
 * A Kysely over the test database's own pool that records the SQL of every statement matching
 * `pattern` (what a test counts: reads of one table, say). The pool closes with the database.
 */
export function countingKysely(test: TestDatabase, pattern: RegExp): { db: Kysely<Database>; seen: string[] } {
  const seen: string[] = [];
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: test.pool }),
    log: (e) => {
      if (e.level === 'query' && pattern.test(e.query.sql)) seen.push(e.query.sql);
    },
  });
  return { db, seen };
}
