import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { RecordsService, type RecordView } from '../../src/sync/records.service.js';
import type { StreamRow, StreamSpec } from '../../src/sync/streams.js';
import { columnType } from '../../src/sync/streams.js';
import { prepareRows, writeRows } from '../../src/sync/write-page.js';
import { STREAM_CATALOG } from '../../src/connectors/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const TENANT = 'tenant-records-json';
/** Quotes, backslashes, control characters, non-ASCII and an astral character. */
const AWKWARD = 'a"b\\c\nd\te\u0001f é 😀 </script>';

/**
 * The page as the API built it before Postgres wrote the JSON: node-pg's parsed row, Dates as
 * toISOString, the stream's own columns in `data` after first_seen_at and raw.
 */
async function asNodeBuiltIt(db: TestDatabase, spec: StreamSpec): Promise<RecordView[]> {
  const res = await sql<Record<string, unknown>>`
    select record_key, deleted_at, updated_at, first_seen_at, raw, ${sql.join(spec.columns.map((c) => sql.ref(c)))}
      from ${sql.table(spec.name)} where tenant_key = ${TENANT} order by change_xid, change_seq`.execute(db.db);
  return res.rows.map((r) => {
    const { record_key, deleted_at, updated_at, ...rest } = r;
    return {
      key: record_key as string,
      deletedAt: deleted_at ? (deleted_at as Date).toISOString() : null,
      updatedAt: (updated_at as Date).toISOString(),
      data: Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
    };
  });
}

describe('records feed JSON written by Postgres', () => {
  let db: TestDatabase;
  let feed: RecordsService;
  beforeAll(async () => {
    db = await createTestDatabase();
    feed = new RecordsService(db.db, STREAM_CATALOG);
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function store(stream: string, rows: StreamRow[]): Promise<void> {
    await db.db.transaction().execute(async (trx) => {
      await writeRows(trx, TENANT, '1', await prepareRows(STREAM_CATALOG.spec(stream), rows), { recordSeen: false });
    });
  }

  it('shows every column type exactly as the page built in Node did (timestamps to the millisecond, truncated, in UTC)', async () => {
    const records = STREAM_CATALOG.spec('base_records');
    const fields = STREAM_CATALOG.spec('base_fields');
    // The types this test covers are the ones streams declare; a new one needs a look here.
    const types = new Set(STREAM_CATALOG.names().flatMap((n) => STREAM_CATALOG.spec(n).columns.map((c) => columnType(STREAM_CATALOG.spec(n), c))));
    expect([...types].sort()).toEqual(['boolean', 'integer', 'jsonb', 'text', 'timestamptz']);

    const raw = { text: AWKWARD, nested: { list: [1, 2.5, -0.125, null, true, 'x'], empty: {} }, big: 1714651327688 };
    await store('base_records', [
      {
        recordKey: 'rec-1',
        partition: 'app:tbl',
        raw,
        columns: {
          app_token: AWKWARD,
          table_id: 'tbl',
          record_id: 'rec-1',
          fields: raw.nested,
          created_by: null,
          created_time: '2026-01-02T03:04:05.678Z',
          last_modified_by: { id: 'ou_1', name: AWKWARD },
          last_modified_time: null,
        },
      },
      { recordKey: 'rec-2', raw: {}, columns: { app_token: 'app', table_id: 'tbl', record_id: 'rec-2', fields: {} } },
    ]);
    // Microseconds (which both drop), a time zone other than UTC, a deletion, an old year.
    await sql`update base_records set created_time = '2026-01-02 03:04:05.678999+08', first_seen_at = '0950-06-01 00:00:00.0005+00',
                                      deleted_at = '2026-12-31 23:59:59.999999-05'
               where tenant_key = ${TENANT} and record_key = 'rec-1'`.execute(db.db);
    await store('base_fields', [
      {
        recordKey: 'fld-1',
        raw: { field_id: 'fld-1' },
        columns: { app_token: 'app', table_id: 'tbl', field_id: 'fld-1', field_name: AWKWARD, type: 17, ui_type: null, is_primary: true },
      },
      { recordKey: 'fld-2', raw: { field_id: 'fld-2' }, columns: { app_token: 'app', table_id: 'tbl', field_id: 'fld-2', type: -3, is_primary: false } },
    ]);

    for (const spec of [records, fields]) {
      const page = await feed.list(TENANT, spec.name, { limit: 10 });
      const expected = await asNodeBuiltIt(db, spec);
      expect(page.records).toEqual(expected);
      // Same keys in the same order, not only equal objects.
      expect(page.records.map((r) => Object.keys(r.data))).toEqual(expected.map((r) => Object.keys(r.data)));
      expect(page.nextCursor).toBeNull();
    }
  });

  it('answers the same page as text and as objects, the cursors included', async () => {
    const text = await feed.listJson(TENANT, 'base_records', { limit: 1 });
    const page = await feed.list(TENANT, 'base_records', { limit: 1 });
    expect(JSON.parse(text)).toEqual(page);
    expect(page.records).toHaveLength(1);
    expect(page.nextCursor).toBe(page.resumeCursor);
    const rest = await feed.list(TENANT, 'base_records', { limit: 1, cursor: page.nextCursor! });
    expect(rest.records.map((r) => r.key)).toEqual(['rec-2']);
    expect(rest.nextCursor).toBeNull();
  });
});
