import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { replaceChildren } from '../../src/sync/write-page.js';
import { countingKysely, createTestDatabase, type TestDatabase } from '../helpers/db.js';

// An approval instance re-read (each approval change event, each instance of a sync page) replaces
// the instance's tasks, timeline and form fields: children it no longer lists are marked deleted.
// The three streams' updates are one statement (three before: a round trip each, nearly always
// deleting nothing).
describe('replaceChildren', () => {
  let db: TestDatabase;
  let counted: Kysely<Database>;
  let seen: string[];

  /** Rows of a child stream, its other required columns filled with a value of their type. */
  const insert = async (table: string, rows: Array<[key: string, instance: string, readSeq?: number]>) => {
    const required = await sql<{ column_name: string; data_type: string }>`
      select column_name, data_type from information_schema.columns
       where table_name = ${table} and is_nullable = 'NO' and column_default is null
         and column_name not in ('tenant_key', 'record_key', 'instance_code', 'raw', 'content_hash')`.execute(db.db);
    const fill: Record<string, string> = { text: 'k', integer: '0', bigint: '0', boolean: 'false', jsonb: `'{}'::jsonb`, 'timestamp with time zone': 'now()' };
    const extra = required.rows.map((c) => ({ name: c.column_name, value: fill[c.data_type] ?? 'k' }));
    await sql`insert into ${sql.table(table)} (tenant_key, record_key, instance_code, raw, content_hash, read_seq${sql.raw(extra.map((c) => `, ${c.name}`).join(''))})
        select 't-rc', k, i, '{}'::jsonb, 'h', r${sql.raw(extra.map((c) => `, ${c.value}`).join(''))}
          from unnest(${rows.map((r) => r[0])}::text[], ${rows.map((r) => r[1])}::text[], ${rows.map((r) => r[2] ?? null)}::bigint[]) as x(k, i, r)`.execute(db.db);
  };
  const alive = async (table: string) =>
    (await sql<{ record_key: string }>`select record_key from ${sql.table(table)} where tenant_key = 't-rc' and deleted_at is null order by record_key`.execute(db.db)).rows.map((r) => r.record_key);

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ db: counted, seen } = countingKysely(db, /approval_/));
    await insert('approval_tasks', [['t1', 'i1'], ['t2', 'i1'], ['t3', 'i1', 100], ['t4', 'i2']]);
    await insert('approval_timeline', [['p1', 'i1'], ['p2', 'i1']]);
    await insert('approval_instance_fields', [['f1', 'i1'], ['f2', 'i1'], ['f3', 'i2']]);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("marks deleted, in one statement, the children of each stream that the parent no longer lists, unless a newer read wrote them", async () => {
    const n = await counted.transaction().execute((trx) =>
      replaceChildren(
        trx,
        't-rc',
        [
          { stream: 'approval_tasks', column: 'instance_code', value: 'i1', keys: ['t1'] },
          { stream: 'approval_timeline', column: 'instance_code', value: 'i1', keys: ['p1', 'p2'] },
          { stream: 'approval_instance_fields', column: 'instance_code', value: 'i1', keys: [] },
        ],
        '50',
      ),
    );
    expect(n).toBe(3);
    expect(seen).toHaveLength(1);
    // t3 was written by read 100, after this read (50) started: it stays. Other instances' children stay.
    expect(await alive('approval_tasks')).toEqual(['t1', 't3', 't4']);
    expect(await alive('approval_timeline')).toEqual(['p1', 'p2']);
    expect(await alive('approval_instance_fields')).toEqual(['f3']);
    const moved = await sql<{ n: number }>`select count(*)::int as n from approval_instance_fields where tenant_key = 't-rc' and deleted_at is not null and change_seq is not null`.execute(db.db);
    expect(moved.rows[0]!.n).toBe(2);
  });

  it('updates one stream named under two parent columns in a statement per column (a row is never updated twice in one)', async () => {
    seen.length = 0;
    const n = await counted.transaction().execute((trx) =>
      replaceChildren(trx, 't-rc', [
        { stream: 'approval_tasks', column: 'instance_code', value: 'i2', keys: [] },
        { stream: 'approval_tasks', column: 'record_key', value: 't1', keys: [] },
      ]),
    );
    expect(n).toBe(2);
    expect(seen).toHaveLength(2);
    expect(await alive('approval_tasks')).toEqual(['t3']);
  });
});
