import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedReadAhead } from '../../src/sync/feed-read-ahead.js';
import { RecordsService } from '../../src/sync/records.service.js';
import type { StreamRow } from '../../src/sync/streams.js';
import { prepareRows, writeRows } from '../../src/sync/write-page.js';
import { STREAM_CATALOG } from '../../src/connectors/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

describe('FeedReadAhead', () => {
  it('serves a page read ahead once, under its exact key', async () => {
    const ahead = new FeedReadAhead<string>({ maxPages: 2, maxAgeMs: 10_000 });
    let reads = 0;
    ahead.start('a', async () => `page ${++reads}`);
    ahead.start('a', async () => `page ${++reads}`);
    expect(ahead.take('b')).toBeUndefined();
    expect(await ahead.take('a')).toBe('page 1');
    expect(ahead.take('a')).toBeUndefined();
    expect(reads).toBe(1);
  });

  it('drops a page older than maxAgeMs, and a read that failed', async () => {
    const ahead = new FeedReadAhead<string>({ maxPages: 2, maxAgeMs: 20 });
    ahead.start('old', async () => 'stale');
    await new Promise((r) => setTimeout(r, 40));
    expect(ahead.take('old')).toBeUndefined();
    ahead.start('broken', async () => {
      throw new Error('connection lost');
    });
    expect(await ahead.take('broken')).toBeUndefined();
  });

  it('keeps at most maxPages, reading nothing more ahead while full', async () => {
    const ahead = new FeedReadAhead<string>({ maxPages: 2, maxAgeMs: 10_000 });
    let reads = 0;
    for (const k of ['a', 'b', 'c']) ahead.start(k, async () => `${k}${++reads}`);
    expect(reads).toBe(2);
    expect(ahead.take('c')).toBeUndefined();
    expect(await ahead.take('a')).toBe('a1');
    ahead.start('c', async () => `c${++reads}`);
    expect(await ahead.take('c')).toBe('c3');
  });
});

describe('records feed with read-ahead: a page read ahead skips nothing written after it', () => {
  const TENANT = 'tenant-read-ahead';
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  const user = (n: number): StreamRow => ({ recordKey: `ou_${n}`, raw: { open_id: `ou_${n}` }, columns: { open_id: `ou_${n}`, name: `user ${n}` } });
  const store = (rows: StreamRow[]) =>
    db.db.transaction().execute(async (trx) => {
      await writeRows(trx, TENANT, '1', await prepareRows(STREAM_CATALOG.spec('contact_users'), rows), { recordSeen: false });
    });

  it('serves the page as it was read, and what was written since on the pages after it', async () => {
    const feed = new RecordsService(db.db, STREAM_CATALOG, { maxPages: 8, maxAgeMs: 60_000 });
    await store([user(1), user(2)]);
    const first = await feed.list(TENANT, 'contact_users', { limit: 1 });
    expect(first.records.map((r) => r.key)).toEqual(['ou_1']);
    // The second page is being read ahead now; give it time to finish before the next writes.
    await new Promise((r) => setTimeout(r, 200));
    await store([user(3)]);
    await store([user(1)].map((u) => ({ ...u, columns: { ...u.columns, name: 'renamed' } })));

    const keys: string[] = [];
    let page = await feed.list(TENANT, 'contact_users', { limit: 1, cursor: first.nextCursor! });
    // Read before the writes: ou_2, and no next page then.
    expect(page.records.map((r) => r.key)).toEqual(['ou_2']);
    expect(page.nextCursor).toBeNull();
    for (let cursor = page.resumeCursor; ; cursor = page.nextCursor!) {
      page = await feed.list(TENANT, 'contact_users', { limit: 1, cursor });
      keys.push(...page.records.map((r) => r.key));
      if (!page.nextCursor) break;
    }
    // Written since: the new row and the changed one, in change order.
    expect(keys).toEqual(['ou_3', 'ou_1']);
  });
});
