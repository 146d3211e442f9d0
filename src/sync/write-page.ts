import { createHash } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import { JSON_COLUMNS, STREAMS, type StreamName, type StreamRow } from './streams.js';
import type { ChildScope } from './sync-module.js';

/** Stable JSON (sorted keys), so the same content always hashes the same. */
function canonical(value: unknown): string {
  // A Date would otherwise serialise as {} and a change of date alone would go unnoticed.
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}

export function contentHash(row: StreamRow): string {
  return createHash('sha256').update(canonical({ raw: row.raw, columns: row.columns })).digest('base64url');
}

function toSqlValue(column: string, value: unknown) {
  if (value === undefined || value === null) return null;
  if (JSON_COLUMNS.has(column)) return JSON.stringify(value);
  if (value instanceof Date) return value.toISOString();
  return value;
}

/**
 * Upserts one page of a stream. Unchanged rows (same content hash) are left alone, so re-reading
 * an overlap window writes nothing; changed rows get a new change_seq for the records cursor.
 * Returns how many rows were inserted or changed.
 */
export async function upsertRows(
  trx: Transaction<Database>,
  stream: StreamName,
  tenantKey: string,
  runId: string,
  rows: StreamRow[],
): Promise<number> {
  if (rows.length === 0) return 0;
  // The same key twice in one statement would make ON CONFLICT fail; the last one wins.
  const byKey = new Map<string, StreamRow>();
  for (const r of rows) byKey.set(r.recordKey, r);
  const unique = [...byKey.values()];
  const specific = STREAMS[stream].columns as readonly string[];
  const columns = ['tenant_key', 'record_key', 'partition', 'raw', 'content_hash', 'last_run_id', ...specific];
  const values = unique.map(
    (r) =>
      sql`(${sql.join([
        tenantKey,
        r.recordKey,
        r.partition ?? '',
        JSON.stringify(r.raw ?? null),
        contentHash(r),
        runId,
        ...specific.map((c) => toSqlValue(c, r.columns[c])),
      ])})`,
  );
  const updates = ['raw', 'content_hash', 'last_run_id', 'partition', ...specific].map(
    (c) => sql`${sql.ref(c)} = excluded.${sql.ref(c)}`,
  );
  // Column types come from the table (jsonb, timestamptz, ...): cast through a typed CTE-free
  // insert by letting Postgres coerce the text parameters.
  const res = await sql<{ n: string }>`
    with upserted as (
      insert into ${sql.table(stream)} (${sql.join(columns.map((c) => sql.ref(c)))})
      values ${sql.join(values)}
      on conflict (tenant_key, record_key) do update set
        ${sql.join(updates)},
        updated_at = now(),
        deleted_at = null,
        change_seq = nextval('sync_change_seq')
      where ${sql.table(stream)}.content_hash is distinct from excluded.content_hash
         or ${sql.table(stream)}.deleted_at is not null
      returning 1
    )
    select count(*)::text as n from upserted`.execute(trx);
  return Number(res.rows[0]?.n ?? 0);
}

export async function recordSeenKeys(
  trx: Transaction<Database>,
  runId: string,
  stream: StreamName,
  rows: StreamRow[],
): Promise<void> {
  if (rows.length === 0) return;
  await trx
    .insertInto('sync_seen_keys')
    .values(rows.map((r) => ({ run_id: runId, stream, partition: r.partition ?? '', record_key: r.recordKey })))
    .onConflict((oc) => oc.doNothing())
    .execute();
}

/**
 * Soft-deletes children that their parent no longer lists. Scopes of one stream and parent column
 * are merged into one statement: record keys are unique per tenant, so "not among the keys any of
 * these parents listed" is the same test as per parent.
 */
export async function replaceChildren(trx: Transaction<Database>, tenantKey: string, scopes: ChildScope[]): Promise<number> {
  const groups = new Map<string, { stream: StreamName; column: string; parents: string[]; keys: string[] }>();
  for (const s of scopes) {
    const id = `${s.stream}\u0000${s.column}`;
    const g = groups.get(id) ?? { stream: s.stream, column: s.column, parents: [], keys: [] };
    g.parents.push(s.value);
    g.keys.push(...s.keys);
    groups.set(id, g);
  }
  let affected = 0;
  for (const g of groups.values()) {
    const res = await sql`
      update ${sql.table(g.stream)}
         set deleted_at = now(), updated_at = now(), change_seq = nextval('sync_change_seq')
       where tenant_key = ${tenantKey}
         and ${sql.ref(g.column)} = any(${g.parents}::text[])
         and deleted_at is null
         and not (record_key = any(${g.keys}::text[]))`.execute(trx);
    affected += Number(res.numAffectedRows ?? 0n);
  }
  return affected;
}

/**
 * After a complete full pass of a partition: rows not seen in this run are gone upstream.
 * They are marked deleted, never removed. An empty listing of a partition that has rows is not
 * trusted (Lark answers permission-filtered lists, e.g. Base advanced permissions, with nothing):
 * it marks nothing and returns -1.
 */
export async function sweepDeletions(
  trx: Transaction<Database>,
  tenantKey: string,
  runId: string,
  stream: StreamName,
  partition: string,
): Promise<number> {
  const seen = await trx
    .selectFrom('sync_seen_keys')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('run_id', '=', runId)
    .where('stream', '=', stream)
    .where('partition', '=', partition)
    .executeTakeFirst();
  let affected = -1;
  if (Number(seen?.n ?? 0) > 0) {
    // Both sides can be large and freshly written (no statistics yet), where the planner picks a
    // nested loop that rescans the seen keys per row: quadratic. A hash anti-join is linear.
    await sql`set local enable_nestloop = off`.execute(trx);
    const res = await sql`
      update ${sql.table(stream)} t
         set deleted_at = now(), updated_at = now(), change_seq = nextval('sync_change_seq')
       where t.tenant_key = ${tenantKey}
         and t.partition = ${partition}
         and t.deleted_at is null
         and not exists (
           select 1 from sync_seen_keys s
            where s.run_id = ${runId} and s.stream = ${stream} and s.partition = ${partition} and s.record_key = t.record_key)`.execute(trx);
    await sql`set local enable_nestloop = on`.execute(trx);
    affected = Number(res.numAffectedRows ?? 0n);
  } else {
    const live = await sql<{ n: number }>`
      select count(*)::int as n from ${sql.table(stream)} where tenant_key = ${tenantKey} and partition = ${partition} and deleted_at is null`.execute(trx);
    if ((live.rows[0]?.n ?? 0) === 0) affected = 0;
  }
  await trx.deleteFrom('sync_seen_keys').where('run_id', '=', runId).where('stream', '=', stream).where('partition', '=', partition).execute();
  return affected;
}

/** A finished or cancelled run's deletion bookkeeping is no longer needed. */
export async function forgetSeenKeys(db: Kysely<Database>, runId: string): Promise<void> {
  await db.deleteFrom('sync_seen_keys').where('run_id', '=', runId).execute();
}
