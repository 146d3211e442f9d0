import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAM_CATALOG } from '../../src/connectors/index.js';
import { columnType, type StreamName, type StreamRow } from '../../src/sync/streams.js';
import { BIG_TEXT_CHARS, contentHash, isoMillis, prepareRows, writeRows } from '../../src/sync/write-page.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const TENANT = 'tenant-write-page';

async function write(db: TestDatabase, stream: StreamName, rows: StreamRow[], only?: number[]) {
  const prepared = await prepareRows(STREAM_CATALOG.spec(stream), rows);
  return db.db.transaction().execute((trx) => writeRows(trx, TENANT, '1', prepared, { recordSeen: false, only }));
}

describe('page writes (binary arrays)', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('declares each stream column with the type the migrations gave it', async () => {
    for (const stream of STREAM_CATALOG.names()) {
      const res = await sql<{ name: string; type: string }>`
        select attname as name, format_type(atttypid, null) as type from pg_attribute
         where attrelid = ${stream}::regclass and attnum > 0 and not attisdropped`.execute(db.db);
      const actual = Object.fromEntries(res.rows.map((r) => [r.name, r.type === 'timestamp with time zone' ? 'timestamptz' : r.type]));
      for (const column of STREAM_CATALOG.spec(stream).columns) {
        expect(`${stream}.${column} ${actual[column]}`).toBe(`${stream}.${column} ${columnType(STREAM_CATALOG.spec(stream), column)}`);
      }
    }
  });

  it('reads only the timestamps Date#toISOString writes, leaving other texts to Postgres', () => {
    expect(isoMillis('2024-04-09T22:32:52.426Z')).toBe(Date.parse('2024-04-09T22:32:52.426Z'));
    expect(isoMillis('2024-02-29T00:00:00.000Z')).toBe(Date.UTC(2024, 1, 29));
    for (const other of ['2023-02-29T00:00:00.000Z', '2024-04-09 22:32:52+08', '0999-01-01T00:00:00.000Z', '+010000-01-01T00:00:00.000Z', '2024-04-09T24:00:00.000Z']) {
      expect(isoMillis(other)).toBeNaN();
    }
  });

  it('stores each value as jsonb_populate_record did: typed where it fits, through its JSON where it does not', async () => {
    const rows: StreamRow[] = [
      {
        recordKey: 'f1',
        partition: 'p',
        raw: { id: 'f1' },
        // text columns holding a number and an object, a JSON column holding a string
        columns: { instance_code: 'i1', path: 'a', widget_id: 1e21, name: { b: [1, 2], a: 'x' }, type: true, value: 'text' },
      },
      { recordKey: 'f2', partition: 'p', raw: { id: 'f2' }, columns: { instance_code: 'i1', path: 'b', widget_id: 'w', name: null, type: 'input', value: null } },
    ];
    await write(db, 'approval_instance_fields', rows);
    const res = await sql<Record<string, unknown>>`
      select record_key, widget_id, name, type, value, value is null as value_null from approval_instance_fields where tenant_key = ${TENANT} order by record_key`.execute(db.db);
    expect(res.rows).toEqual([
      { record_key: 'f1', widget_id: '1000000000000000000000', name: '{"a": "x", "b": [1, 2]}', type: 'true', value: 'text', value_null: false },
      { record_key: 'f2', widget_id: 'w', name: null, type: 'input', value: null, value_null: true },
    ]);

    // A timestamp in another notation is parsed by Postgres, exact ISO ones are sent as microseconds.
    const timeline = (n: number, create_time: string | null): StreamRow => ({
      recordKey: `t${n}`,
      partition: 'p',
      raw: { n },
      columns: { instance_code: 'i1', position: n, type: 'x', create_time },
    });
    await write(db, 'approval_timeline', [timeline(0, '2024-04-09 22:32:52.5+08'), timeline(1, '2024-04-09T14:32:52.500Z'), timeline(2, null)]);
    await write(db, 'approval_timeline', [timeline(3, '1999-12-31T23:59:59.999Z'), timeline(4, '2024-04-09T14:32:52.500Z')]);
    const times = await sql<{ record_key: string; t: string | null }>`
      select record_key, to_char(create_time at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') as t from approval_timeline order by record_key`.execute(db.db);
    expect(times.rows.map((r) => r.t)).toEqual(['2024-04-09 14:32:52.500', '2024-04-09 14:32:52.500', null, '1999-12-31 23:59:59.999', '2024-04-09 14:32:52.500']);
  });

  it('writes only the rows asked for, and keeps Base JSON columns that are raw members out of the payload', async () => {
    const raw = (n: number) => ({ record_id: `r${n}`, fields: { Name: `n${n}` }, created_by: { id: 'ou_1' } });
    const rows: StreamRow[] = [0, 1, 2].map((n) => {
      const r = raw(n);
      return {
        recordKey: `app:tbl:r${n}`,
        partition: 'app:tbl',
        raw: r,
        columns: { app_token: 'app', table_id: 'tbl', record_id: `r${n}`, fields: r.fields, created_by: n === 2 ? { id: 'other' } : r.created_by, created_time: null, last_modified_by: null, last_modified_time: null },
      };
    });
    expect(await write(db, 'base_records', rows, [0, 2])).toBe(2);
    expect(await write(db, 'base_records', rows)).toBe(1);
    const res = await sql<{ record_key: string; fields: unknown; created_by: unknown; content_hash: string }>`
      select record_key, fields, created_by, content_hash from base_records order by record_key`.execute(db.db);
    expect(res.rows).toEqual(
      rows.map((r) => ({ record_key: r.recordKey, fields: r.columns.fields, created_by: r.columns.created_by, content_hash: contentHash(r, STREAM_CATALOG.spec('base_records').volatile) })),
    );
  });

  it('reserves what a large text takes rather than three times its length, and one huge page does not size the pages after it', async () => {
    const spec = STREAM_CATALOG.spec('docs_content');
    // About 11 MB of Markdown, as an oversize wiki page gives (docs-content.md §5.1: over 10 MB).
    const big = 'Lorem ipsum dolor sit amet, consectetur. '.repeat(270_000);
    const row = (key: string, markdown: string): StreamRow => ({
      recordKey: key,
      partition: 'wiki:7001',
      raw: { node: { node_token: `wik${key}`, title: key } },
      columns: { token: key, obj_type: 'docx', format: 'markdown', title: key, path: `Handbook / ${key}`, url: null, markdown, file: null, size: markdown.length, body_hash: key, edited_time: null, revision: 1 },
    });
    // What the page's arrays keep alive until it commits: their whole backing stores.
    const held = (p: Awaited<ReturnType<typeof prepareRows>>) => p.arrays.reduce((n, a) => n + a.buffer.byteLength, 0);
    const large = await prepareRows(spec, [row('doxcnLarge', big), row('doxcnSmall', 'A short page.')]);
    // The big body is not in the arrays at all: writeRows appends it in parts (next test).
    expect(held(large)).toBeLessThan(1024 * 1024);
    expect(large.bigTexts.map((b) => [b.index, b.column, b.value.length])).toEqual([[0, 'markdown', big.length]]);
    const next = await prepareRows(spec, [row('doxcnNext1', 'One.'), row('doxcnNext2', 'Two.')]);
    expect(held(next)).toBeLessThan(6 * 1024 * 1024);
  });

  it('stores a text over the bound whole, appended in parts: surrogate pairs kept, never twice, hashes as before', async () => {
    // A pair straddles the first part boundary (and a hashing chunk's), JSON escapes throughout, a
    // cleaned NUL, and a pair at the very end.
    const body = `${'x'.repeat(BIG_TEXT_CHARS - 1)}\u{1F600}${'段落 "quoted" \\ back\n\t\u0001 '.repeat(40_000)}${'y'.repeat(262_143)}\u{1F601}\u0000\u{1F680}`;
    const stored = body.replace('\u0000', '\uFFFD');
    const row = (key: string, markdown: string | null, title = key): StreamRow => ({
      recordKey: key,
      partition: 'wiki:7002',
      raw: { node: { node_token: `wik${key}`, title } },
      columns: { token: key, obj_type: 'docx', format: 'markdown', title, path: `Handbook / ${key}`, url: null, markdown, file: null, size: 1, body_hash: key, edited_time: null, revision: 1 },
    });
    const read = async (key: string) =>
      (await sql<{ markdown: string | null; content_hash: string; change_seq: string }>`
        select markdown, content_hash, change_seq::text from docs_content where tenant_key = ${TENANT} and record_key = ${key}`.execute(db.db)).rows[0]!;

    expect(await write(db, 'docs_content', [row('doxcnBig', body), row('doxcnTiny', 'tiny')])).toBe(2);
    const first = await read('doxcnBig');
    expect(first.markdown?.length).toBe(stored.length);
    expect(first.markdown === stored).toBe(true);
    // The content hash is the one the whole row hashes to, as when the text was bound whole.
    expect(first.content_hash).toBe(contentHash(row('doxcnBig', body)));

    // Unchanged: nothing written, and the text is not appended a second time.
    expect(await write(db, 'docs_content', [row('doxcnBig', body), row('doxcnTiny', 'tiny')])).toBe(0);
    const again = await read('doxcnBig');
    expect(again.markdown === stored && again.change_seq === first.change_seq).toBe(true);

    // A row of the page that is not picked (only) gets no text either.
    expect(await write(db, 'docs_content', [row('doxcnBig', `${body}!`), row('doxcnTiny', 'tiny 2')], [1])).toBe(1);
    expect((await read('doxcnBig')).markdown === stored).toBe(true);

    // Changed: replaced whole, then shrunk below the bound, then one page holding only it.
    const edited = `# New\n${'y'.repeat(2 * BIG_TEXT_CHARS + 5)}`;
    expect(await write(db, 'docs_content', [row('doxcnBig', edited)])).toBe(1);
    expect((await read('doxcnBig')).markdown === edited).toBe(true);
    expect(await write(db, 'docs_content', [row('doxcnBig', 'short now')])).toBe(1);
    expect((await read('doxcnBig')).markdown).toBe('short now');
    expect(await write(db, 'docs_content', [row('doxcnBig', null, 'gone')])).toBe(1);
    expect((await read('doxcnBig')).markdown).toBeNull();
  });
});
