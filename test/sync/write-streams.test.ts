import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import { MODULES } from '../../src/connectors/index.js';
import type { Database } from '../../src/db/database.js';
import type { StreamRow } from '../../src/sync/streams.js';
import { prepareRows, writeStreams, type PreparedRows } from '../../src/sync/write-page.js';
import { countingKysely, createTestDatabase, type TestDatabase } from '../helpers/db.js';

// An approval change event re-reads the instance with its form fields, tasks and timeline: four
// streams from one read, written in one statement (an upsert per stream in one WITH), where each
// stream took a round trip of its own.
describe('writeStreams', () => {
  let db: TestDatabase;
  let counted: Kysely<Database>;
  let seen: string[];
  const streams = MODULES.approval!.streams;

  /** A row of `stream` with each declared column given a value of its type. */
  const row = (stream: string, key: string, label: string): StreamRow => {
    const def = streams[stream]!;
    const columns: Record<string, unknown> = {};
    for (const c of def.columns) {
      const type = def.types?.[c] ?? 'text';
      columns[c] = type === 'timestamptz' ? '2026-12-01T00:00:00.000Z' : type === 'integer' ? 1 : type === 'jsonb' ? { label } : `${c}-${label}`;
    }
    columns.instance_code = 'inst-1';
    return { recordKey: key, raw: { key, label }, columns };
  };
  const prepare = async (label: string): Promise<PreparedRows[]> => [
    await prepareRows({ ...streams.approval_instances!, name: 'approval_instances', module: '' }, [row('approval_instances', 'inst-1', label)]),
    await prepareRows({ ...streams.approval_instance_fields!, name: 'approval_instance_fields', module: '' }, [row('approval_instance_fields', 'f-1', label), row('approval_instance_fields', 'f-2', label)]),
    await prepareRows({ ...streams.approval_tasks!, name: 'approval_tasks', module: '' }, [row('approval_tasks', 't-1', label)]),
    await prepareRows({ ...streams.approval_timeline!, name: 'approval_timeline', module: '' }, [row('approval_timeline', 'p-1', label)]),
  ];
  const labels = async (table: string) =>
    (await sql<{ record_key: string; label: string }>`select record_key, raw ->> 'label' as label from ${sql.table(table)} where tenant_key = 't-ws' order by record_key`.execute(db.db)).rows.map((r) => `${r.record_key}:${r.label}`);

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ db: counted, seen } = countingKysely(db, /approval_/));
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('writes four streams in one statement, then changes only what changed, never over a newer read', async () => {
    expect(await counted.transaction().execute(async (trx) => writeStreams(trx, 't-ws', await prepare('a'), { readSeq: '10' }))).toBe(5);
    expect(seen).toHaveLength(1);
    expect(await labels('approval_instance_fields')).toEqual(['f-1:a', 'f-2:a']);
    expect(await labels('approval_timeline')).toEqual(['p-1:a']);
    // The same content again: nothing written.
    expect(await counted.transaction().execute(async (trx) => writeStreams(trx, 't-ws', await prepare('a'), { readSeq: '11' }))).toBe(0);
    // A task written by a later read (20) stays as that read saw it; the rest takes read 12's.
    await sql`update approval_tasks set read_seq = 20 where tenant_key = 't-ws'`.execute(db.db);
    expect(await counted.transaction().execute(async (trx) => writeStreams(trx, 't-ws', await prepare('b'), { readSeq: '12' }))).toBe(4);
    expect(await labels('approval_tasks')).toEqual(['t-1:a']);
    expect(await labels('approval_instances')).toEqual(['inst-1:b']);
    expect(seen).toHaveLength(3);
  });
});
