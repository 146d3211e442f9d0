import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { sql, type Transaction } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { RecordsService } from '../../src/sync/records.service.js';
import type { StreamRow } from '../../src/sync/streams.js';
import { prepareRows, writeRows } from '../../src/sync/write-page.js';
import { STREAM_CATALOG } from '../../src/connectors/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { connectDatabase } from '../../src/db/connect.js';

const TENANT = 'tenant-feed-horizon';

const user = (n: number, name = `user ${n}`): StreamRow => ({
  recordKey: `ou_${n}`,
  raw: { open_id: `ou_${n}`, name },
  columns: { open_id: `ou_${n}`, name },
});

/** A transaction held open until `release` is called; `wrote` resolves once its rows are written. */
function openTransaction(db: TestDatabase, rows: StreamRow[]) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let wrote!: () => void;
  const written = new Promise<void>((r) => (wrote = r));
  const done = db.db.transaction().execute(async (trx: Transaction<Database>) => {
    await writeRows(trx, TENANT, '1', await prepareRows(STREAM_CATALOG.spec('contact_users'), rows), { recordSeen: false });
    wrote();
    await released;
  });
  return { written, release, done };
}

describe('records feed horizon: a cursor never passes a row that is still to commit', () => {
  let db: TestDatabase;
  let feed: RecordsService;
  beforeAll(async () => {
    db = await createTestDatabase();
    feed = new RecordsService(db.db, STREAM_CATALOG);
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function follow(cursor: string | undefined): Promise<{ keys: string[]; cursor: string }> {
    const keys: string[] = [];
    for (;;) {
      const page = await feed.list(TENANT, 'contact_users', { limit: 2, cursor });
      keys.push(...page.records.map((r) => r.key));
      cursor = page.resumeCursor;
      if (!page.nextCursor) return { keys, cursor };
    }
  }

  /**
   * Follows until `count` keys came (or 10 s passed): a commit becomes servable a moment later.
   */
  async function followUntil(cursor: string | undefined, count: number): Promise<{ keys: string[]; cursor: string }> {
    const keys: string[] = [];
    const until = Date.now() + 10_000;
    for (;;) {
      const got = await follow(cursor);
      keys.push(...got.keys);
      cursor = got.cursor;
      if (keys.length >= count || Date.now() > until) return { keys, cursor };
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('holds back rows of a later transaction that committed while an earlier one is still open, and serves both once it commits', async () => {
    const before = await follow(undefined);
    expect(before.keys).toEqual([]);

    // T1 writes first (lower positions), then T2 writes and commits while T1 stays open: Base's
    // read-ahead does this with two pages, and any two writers of one stream can.
    const t1 = openTransaction(db, [user(1), user(2), user(3)]);
    await t1.written;
    const t2 = openTransaction(db, [user(4), user(5)]);
    await t2.written;
    t2.release();
    await t2.done;

    // Polled in between: T2's rows are visible, but serving them would move the cursor past
    // T1's rows, which would then never be served.
    const between = await follow(before.cursor);
    expect(between.keys).toEqual([]);

    t1.release();
    await t1.done;
    const after = await followUntil(between.cursor, 5);
    expect(after.keys.sort()).toEqual(['ou_1', 'ou_2', 'ou_3', 'ou_4', 'ou_5']);

    // A change later comes again, once, after everything already served.
    const t3 = openTransaction(db, [user(2, 'renamed')]);
    t3.release();
    await t3.done;
    const again = await followUntil(after.cursor, 1);
    expect(again.keys).toEqual(['ou_2']);
    expect((await follow(again.cursor)).keys).toEqual([]);
  });

  it('is not held back by a transaction open in another database of the same server', async () => {
    const other = await createTestDatabase({ migrate: false });
    const client = new pg.Client({ connectionString: other.url });
    await client.connect();
    // Sessions with the production interval (this file's database looks up at every read).
    const lazyUrl = new URL(db.url);
    lazyUrl.searchParams.set('options', '-c larksync.feed_horizon_check_ms=100');
    const lazy = connectDatabase(lazyUrl.toString(), { max: 2 });
    const lazyFeed = new RecordsService(lazy.db, STREAM_CATALOG);
    try {
      const setting = await sql<{ ms: string }>`select current_setting('larksync.feed_horizon_check_ms') as ms`.execute(lazy.db);
      expect(setting.rows[0]?.ms).toBe('100');
      // An xid assigned in the other database, older than the rows written below, held open.
      await client.query('begin');
      await client.query('create table held_open (id int)');
      const start = await follow(undefined);
      const t = openTransaction(db, [user(700), user(701)]);
      t.release();
      await t.done;
      // Served at once when looking up at every read; within a moment (once the other database's
      // id has held a session's horizon for 100 ms) with the production interval. Without the
      // per-database horizon both would wait for as long as the other transaction stays open.
      const got = await follow(start.cursor);
      expect(got.keys.sort()).toEqual(['ou_700', 'ou_701']);
      const began = Date.now();
      let lazyKeys: string[] = [];
      while (lazyKeys.length < 2 && Date.now() - began < 5_000) {
        lazyKeys = (await lazyFeed.list(TENANT, 'contact_users', { limit: 10, cursor: start.cursor })).records.map((r) => r.key);
        if (lazyKeys.length < 2) await new Promise((r) => setTimeout(r, 20));
      }
      expect(lazyKeys.sort()).toEqual(['ou_700', 'ou_701']);
      expect(Date.now() - began).toBeLessThan(2_000);
    } finally {
      await client.query('rollback').catch(() => undefined);
      await client.end();
      await lazy.close();
      await other.drop();
    }
  });

  it('looks other databases up only once one id has held the horizon for the interval, and remembers their ids', async () => {
    const other = await createTestDatabase({ migrate: false });
    const foreign = new pg.Client({ connectionString: other.url });
    const session = new pg.Client({ connectionString: db.url });
    await foreign.connect();
    await session.connect();
    let held: ReturnType<typeof openTransaction> | undefined;
    try {
      await foreign.query('begin');
      const foreignId = BigInt((await foreign.query<{ x: string }>('select pg_current_xact_id()::text as x')).rows[0]!.x);
      // This database's transaction, open after the other one's.
      held = openTransaction(db, [user(801)]);
      await held.written;
      // A later transaction that ends: snapshots' xmax passes both, so both are in-progress ids.
      await sql`select pg_current_xact_id()`.execute(db.db);
      // Each call's snapshot is its own; the counts are this transaction's (superuser setting).
      await session.query('begin');
      await session.query("set local track_functions = 'pl'");
      const horizon = async () => BigInt((await session.query<{ h: string }>('select feed_horizon()::text as h')).rows[0]!.h);
      const lookups = async () =>
        Number((await session.query<{ n: string | null }>("select pg_stat_get_xact_function_calls('feed_horizon_foreign(pg_snapshot)'::regprocedure)::text as n")).rows[0]!.n ?? 0);
      const checkAfter = (ms: number) => session.query(`set larksync.feed_horizon_check_ms = ${ms}`);

      // Within the interval the oldest open id holds the horizon, whatever its database (other
      // test files on this server may hold older ones): safe, and no lookup.
      await checkAfter(600_000);
      for (let i = 0; i < 20; i += 1) expect(await horizon()).toBeLessThanOrEqual(foreignId);
      expect(await lookups()).toBe(0);

      // The interval over: one lookup skips the other database's ids, and this database's open
      // transaction holds the horizon. (Another file's transaction may hold it first for a moment.)
      await checkAfter(1);
      const until = Date.now() + 5_000;
      while ((await lookups()) === 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 5));
        await horizon();
      }
      expect(await lookups()).toBe(1);
      // Remembered for the session: no lookup again while the other transaction stays open.
      await checkAfter(600_000);
      const afterLookup = await horizon();
      expect(afterLookup).toBeGreaterThan(foreignId);
      for (let i = 0; i < 20; i += 1) expect(await horizon()).toBe(afterLookup);
      // It was this database's transaction that held it.
      held.release();
      await held.done;
      expect(await horizon()).toBeGreaterThan(afterLookup);
      expect(await lookups()).toBe(1);
      await session.query('commit');
    } finally {
      held?.release();
      await held?.done.catch(() => undefined);
      await foreign.query('rollback').catch(() => undefined);
      await Promise.all([foreign.end(), session.end()]);
      await other.drop();
    }
  });

  it('orders positions numerically across a power of ten within one transaction', async () => {
    await db.db.transaction().execute(async (trx) => {
      // 90 rows from 950: positions 951..1040 in one transaction.
      await sql`select setval('sync_change_seq', 950)`.execute(trx);
      await writeRows(trx, TENANT, '1', await prepareRows(STREAM_CATALOG.spec('contact_users'), Array.from({ length: 90 }, (_, i) => user(100 + i))), { recordSeen: false });
    });
    const walked = await followUntil(undefined, 90);
    const all = new Set(walked.keys);
    for (let i = 0; i < 90; i += 1) expect(all.has(`ou_${100 + i}`), `ou_${100 + i}`).toBe(true);
  });

  it('answers a cursor that does not fit with 400 invalid_cursor', async () => {
    const cursors = [
      Buffer.from('v2:99999999999999999999.1').toString('base64url'),
      Buffer.from('v1:9223372036854775808').toString('base64url'),
      Buffer.from('v2:1').toString('base64url'),
      'not-a-cursor',
    ];
    for (const cursor of cursors) {
      await expect(feed.list(TENANT, 'contact_users', { limit: 1, cursor }), cursor).rejects.toMatchObject({ statusCode: 400, code: 'invalid_cursor' });
    }
    // A cursor from before transaction ids were stored still reads on.
    const legacy = Buffer.from('v1:0').toString('base64url');
    expect((await feed.list(TENANT, 'contact_users', { limit: 1000, cursor: legacy })).records.length).toBeGreaterThan(0);
  });
});
