import { isDeepStrictEqual } from 'node:util';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/database.js';
import type { StreamName } from '../../src/sync/streams.js';
import type { SimTable } from '../../simulator/data/bitable/index.js';
import type { ContactDirectory } from '../../simulator/data/contact.js';

/** What a synced row must hold: record key -> the fields of its raw payload to compare. */
export type ExpectedRows = Map<string, Record<string, unknown>>;

export interface StreamMatch {
  stream: StreamName;
  /** live rows (deleted_at null) of records the source has */
  live: number;
  /** live rows of records gone at the source that one complete listing missed: deletion candidates awaiting the next */
  pending: number;
  deleted: number;
  /** Every difference, worded for a failure message; empty when the table equals the source. */
  problems: string[];
}

const LIMIT = 20;

/**
 * Compares one stream table of a tenant with the source: every expected key has a live row whose
 * raw payload holds the expected values, no other row is live, and every deleted row belongs to a
 * record that is gone upstream (`gone`: keys deleted at the source after they may have been synced).
 */
export async function matchStream(
  db: Kysely<Database>,
  stream: StreamName,
  tenantKey: string,
  expected: ExpectedRows,
  opts: { partitions?: string[]; gone?: ReadonlySet<string>; pending?: ReadonlySet<string> } = {},
): Promise<StreamMatch> {
  const res = await sql<{ record_key: string; raw: Record<string, unknown> | null; deleted: boolean }>`
    select record_key, raw, deleted_at is not null as deleted from ${sql.table(stream)}
     where tenant_key = ${tenantKey}
       ${opts.partitions ? sql`and partition = any(${opts.partitions}::text[])` : sql``}`.execute(db);
  const problems: string[] = [];
  const note = (p: string) => {
    if (problems.length < LIMIT) problems.push(p);
    else if (problems.length === LIMIT) problems.push('(more differences not listed)');
  };
  const seen = new Set<string>();
  let live = 0;
  let deleted = 0;
  let pending = 0;
  for (const row of res.rows) {
    seen.add(row.record_key);
    const want = expected.get(row.record_key);
    if (row.deleted) {
      deleted += 1;
      if (want) note(`${stream} ${row.record_key}: marked deleted but exists at the source`);
      else if (opts.gone && !opts.gone.has(row.record_key)) note(`${stream} ${row.record_key}: marked deleted but never deleted at the source`);
      continue;
    }
    if (!want) {
      if (opts.pending?.has(row.record_key)) pending += 1;
      else note(`${stream} ${row.record_key}: live row for a record the source does not have`);
      continue;
    }
    live += 1;
    for (const [field, value] of Object.entries(want)) {
      const got = unsigned(row.raw?.[field]);
      if (!isDeepStrictEqual(got, value)) {
        note(`${stream} ${row.record_key}: raw.${field} is ${JSON.stringify(got)?.slice(0, 200)}, source has ${JSON.stringify(value)?.slice(0, 200)}`);
        break;
      }
    }
  }
  for (const key of expected.keys()) if (!seen.has(key)) note(`${stream} ${key}: missing`);
  return { stream, live, deleted, pending, problems };
}

/**
 * A value with the per-read signature the simulator adds to attachment links taken off: the
 * stored link is the one of the row's last real change, the source holds it unsigned.
 */
function unsigned(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(unsigned);
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    out[k] = 'file_token' in o && (k === 'url' || k === 'tmp_url') && typeof x === 'string' ? x.replace(/[?&]sig=\d+$/, '') : unsigned(x);
  }
  return out;
}

const pick = (obj: object, keys: readonly string[]) =>
  Object.fromEntries(keys.filter((k) => k in obj).map((k) => [k, (obj as Record<string, unknown>)[k]]));

const RECORD_KEYS = ['record_id', 'fields', 'created_by', 'created_time', 'last_modified_by', 'last_modified_time'] as const;
const FIELD_KEYS = ['field_id', 'field_name', 'type', 'ui_type', 'is_primary', 'property'] as const;

/** Every record of a simulated Base table, as records/search with automatic_fields serves it. */
export function baseRecordsOf(appToken: string, table: SimTable): ExpectedRows {
  const out: ExpectedRows = new Map();
  for (let i = 0; i < table.count; i += 1) {
    const r = table.nth(i);
    if (r) out.set(`${appToken}:${table.table_id}:${r.record_id}`, pick(r, RECORD_KEYS));
  }
  return out;
}

export function baseFieldsOf(appToken: string, table: SimTable): ExpectedRows {
  return new Map(table.fields.map((f) => [`${appToken}:${table.table_id}:${f.field_id}`, pick(f, FIELD_KEYS)]));
}

/** Highest last_modified_time of a table: where a complete pass leaves the incremental cursor. */
export function maxModified(table: SimTable): number {
  let max = 0;
  for (let i = 0; i < table.count; i += 1) max = Math.max(max, table.nth(i)?.last_modified_time ?? 0);
  return max;
}

const USER_KEYS = ['open_id', 'union_id', 'name', 'en_name', 'department_ids', 'status', 'job_title', 'join_time'] as const;
const DEPARTMENT_KEYS = ['open_department_id', 'department_id', 'parent_department_id', 'name', 'status'] as const;

/** Users a store app lists with open ids: members of the root or of a department that is not deleted. */
export function contactUsersOf(dir: ContactDirectory): ExpectedRows {
  const listed = new Set(['0', ...[...dir.departments.values()].filter((d) => !d.status.is_deleted).map((d) => d.open_department_id)]);
  const out: ExpectedRows = new Map();
  for (const u of dir.users.values()) {
    if (u.department_ids.some((d) => listed.has(d))) out.set(u.open_id, pick(u, USER_KEYS));
  }
  return out;
}

export function contactDepartmentsOf(dir: ContactDirectory): ExpectedRows {
  const out: ExpectedRows = new Map();
  for (const d of dir.departments.values()) if (!d.status.is_deleted) out.set(d.open_department_id, pick(d, DEPARTMENT_KEYS));
  return out;
}

/** Rows a full contact pass reads: a user listed under two departments counts twice. */
export function contactListings(dir: ContactDirectory): { users: number; departments: number } {
  const depts = [...dir.departments.values()].filter((d) => !d.status.is_deleted).map((d) => d.open_department_id);
  let users = 0;
  for (const d of ['0', ...depts]) users += dir.members(d).length;
  return { users, departments: depts.length };
}

/**
 * The table holding runs' deletion bookkeeping (the keys each run has seen): sync_seen_pages, or
 * sync_seen_keys before the 2026_11_21_1300 migration.
 */
export async function seenKeysTable(db: Kysely<Database>): Promise<'sync_seen_pages' | 'sync_seen_keys'> {
  const res = await sql<{ t: string | null }>`select to_regclass('public.sync_seen_pages')::text as t`.execute(db);
  return res.rows[0]?.t ? 'sync_seen_pages' : 'sync_seen_keys';
}

/** Rows of a stream that complete listings have missed, to be marked deleted once the next one misses them too. */
export async function deletionCandidates(db: Kysely<Database>, stream: StreamName, tenantKey: string): Promise<Set<string>> {
  const res = await sql<{ record_key: string }>`
    select record_key from sync_delete_candidates where tenant_key = ${tenantKey} and stream = ${stream}`.execute(db);
  return new Set(res.rows.map((r) => r.record_key));
}

/** Bookkeeping rows the given runs left behind (a finished run should leave none). */
export async function seenKeysLeft(db: Kysely<Database>, runIds: string[]): Promise<number> {
  const table = await seenKeysTable(db);
  const res = await sql<{ n: number }>`
    select count(*)::int as n from ${sql.table(table)} where run_id = any(${runIds}::bigint[])`.execute(db);
  return res.rows[0]?.n ?? 0;
}
