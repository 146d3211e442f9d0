import * as crypto from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import { JSON_COLUMNS, STREAMS, volatileOf, type StreamName, type StreamRow, type VolatileValues } from './streams.js';
import type { ChildScope } from './sync-module.js';

/** SHA-256 as base64url. crypto.hash (one call, no Hash object per row) exists from Node 20.12 on. */
const sha256: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'base64url')
    : (text) => crypto.createHash('sha256').update(text).digest('base64url');

/**
 * The canonicaliser's per-row state. Rows are canonicalised synchronously one at a time, so these
 * are set before each row and read right after it, even with several pages prepared at once.
 */
const walk = {
  /** NULs and lone surrogates replaced in the current row */
  sanitized: 0,
  /** the stream's members that Lark changes on every read */
  volatile: undefined as VolatileValues | undefined,
  /** the current row holds such members */
  sawVolatile: false,
  /** building the text that is hashed: such members are left out */
  skipVolatile: false,
};

/**
 * A string as JSON that Postgres accepts. JSON writes a NUL as \u0000 and a lone surrogate as
 * \udxxx, and Postgres's jsonb and text refuse both: one such value in a Base cell or a form
 * would fail its page on every run. They are stored as U+FFFD and counted. Almost no string has
 * an escape at all, so the exact test runs only on the few that do.
 */
function jsonString(value: string): string {
  const text = JSON.stringify(value);
  if (!text.includes('\\u')) return text;
  const clean = cleanText(value);
  return clean === value ? text : JSON.stringify(clean);
}

/** The string with U+FFFD in place of NULs and lone surrogates (counted), or the string itself. */
function cleanText(value: string): string {
  if (!value.includes('\u0000') && value.isWellFormed()) return value;
  walk.sanitized += 1;
  return value.replaceAll('\u0000', '\uFFFD').toWellFormed();
}

/** A key or value as it is stored: cleaned the same way, without counting. */
export function storableText(value: string): string {
  return !value.includes('\u0000') && value.isWellFormed() ? value : value.replaceAll('\u0000', '\uFFFD').toWellFormed();
}

/** Object keys as JSON strings: the same few names come back in every row. */
const quotedKeys = new Map<string, string>();
function quoted(key: string): string {
  let q = quotedKeys.get(key);
  if (q === undefined) {
    const before = walk.sanitized;
    q = jsonString(key);
    // Bounded: keys are field names, a table has at most a few hundred. A key that had to be
    // cleaned is not kept, so that each row holding it is counted.
    if (quotedKeys.size < 10_000 && walk.sanitized === before) quotedKeys.set(key, q);
  }
  return q;
}

/**
 * Stable JSON (sorted keys, `undefined` members left out, Dates as ISO strings), so the same
 * content always hashes the same. The output must stay byte-for-byte what it has always been:
 * stored hashes depend on it, and a change would make the next run rewrite every row once.
 */
function canonical(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return jsonString(value);
  if (typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  // A Date would otherwise serialise as {} and a change of date alone would go unnoticed.
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + canonical(value[i]);
    return `${out}]`;
  }
  return canonicalObject(value as Record<string, unknown>, canonical);
}

/**
 * Sorts in place by UTF-16 code units (what the default sort and < do). Objects in a row have a
 * handful of keys, where an insertion sort is quicker than Array#sort and allocates nothing (the
 * built-in sort's working storage was the largest allocation of the whole sync).
 */
function sortKeys(keys: string[]): string[] {
  if (keys.length > 32) return keys.sort();
  for (let i = 1; i < keys.length; i += 1) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j -= 1;
    }
    keys[j + 1] = k;
  }
  return keys;
}

/** An object's canonical text, its members' texts coming from `member`. */
function canonicalObject(record: Record<string, unknown>, member: (v: unknown, key: string) => string): string {
  const keys = sortKeys(Object.keys(record));
  const volatile = walk.volatile !== undefined && Object.prototype.hasOwnProperty.call(record, walk.volatile.objectsWith) ? walk.volatile : undefined;
  if (volatile) walk.sawVolatile = true;
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = record[k];
    if (v === undefined) continue;
    if (volatile && walk.skipVolatile && volatile.keys.includes(k)) continue;
    out += (first ? '' : ',') + quoted(k) + ':' + member(v, k);
    first = false;
  }
  return `${out}}`;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/**
 * canonical({ raw, columns }) and the pieces it is made of: the canonical text of `raw` and of
 * each column's value (which is also valid JSON of it, reused for the payload sent to Postgres).
 * A column holding the very object found in `raw` (Base's fields, created_by) reuses its text.
 */
function canonicalParts(r: StreamRow): { text: string; raw: string | undefined; columns: Record<string, string> } {
  const shared: Array<[unknown, string]> = [];
  let raw: string | undefined;
  if (isPlainObject(r.raw)) {
    raw = canonicalObject(r.raw, (v) => {
      const t = canonical(v);
      if (typeof v === 'object' && v !== null) shared.push([v, t]);
      return t;
    });
  } else if (r.raw !== undefined) {
    raw = canonical(r.raw);
  }
  const columns: Record<string, string> = {};
  const columnsText = canonicalObject(r.columns, (v, k) => {
    const t = (typeof v === 'object' && v !== null ? shared.find(([o]) => o === v)?.[1] : undefined) ?? canonical(v);
    columns[k] = t;
    return t;
  });
  // Sorted keys: "columns" comes before "raw"; an undefined member is left out.
  const text = raw === undefined ? `{"columns":${columnsText}}` : `{"columns":${columnsText},"raw":${raw}}`;
  return { text, raw, columns };
}

/**
 * A row's texts to store, the text its content hash is taken of (the same, unless the row holds
 * members that change on every read), and how many values had to be cleaned.
 */
function canonicalRow(r: StreamRow, volatile?: VolatileValues): { text: string; hashed: string; raw: string | undefined; columns: Record<string, string>; sanitized: number } {
  walk.sanitized = 0;
  walk.volatile = volatile;
  walk.sawVolatile = false;
  const parts = canonicalParts(r);
  const sanitized = walk.sanitized;
  let hashed = parts.text;
  if (walk.sawVolatile) {
    // Only rows that hold such members pay for a second walk.
    walk.skipVolatile = true;
    try {
      hashed = canonicalParts(r).text;
    } finally {
      walk.skipVolatile = false;
    }
  }
  walk.volatile = undefined;
  return { ...parts, hashed, sanitized };
}

export function contentHash(r: StreamRow, stream?: StreamName): string {
  return sha256(canonicalRow(r, stream ? volatileOf(stream) : undefined).hashed);
}

/**
 * One stream's rows of a page, hashed and serialised once, ready to be written: a JSON array that
 * Postgres expands into the table's records. One parameter instead of one per cell keeps both
 * sides cheap (no 7 000-parameter statement to build, bind and parse), and the JSON carries each
 * value once: a value every row shares (Base's app_token, table_id, partition) goes in `common`,
 * and a JSON column that is the very object found under its name in `raw` (Base's fields,
 * created_by, last_modified_by) is taken from `raw` by Postgres instead of being sent twice.
 */
export interface PreparedRows {
  stream: StreamName;
  /** record keys, without repeats */
  keys: string[];
  /**
   * The rows as a JSON array in jsonb's binary wire format (a version byte, then the text), sent
   * as is. Each row is an object of record_key, content_hash, raw, the columns not common or taken
   * from raw, and `$r`. A Buffer lives outside the JS heap and is freed as soon as the page is
   * committed, where 500 strings waiting for the commit would be promoted to the old generation.
   */
  payload: Buffer;
  /** where each row's JSON starts and ends in `payload` (pairs of byte offsets), to send some of them */
  spans: Uint32Array;
  /** columns with the same value in every row (JSON object) */
  common: string;
  commonColumns: string[];
  /** JSON columns some rows take from raw; bit i of a row's `$r` stands for fromRaw[i] */
  fromRaw: string[];
  /** values stored with U+FFFD in place of a NUL or a lone surrogate */
  sanitized: number;
}

const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null;
const isPrimitive = (v: unknown) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

/** Rows hashed between two yields to the event loop (about a millisecond's work). */
const ROWS_PER_TURN = 100;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Done while earlier pages commit and the next one is fetched. It yields to the event loop every
 * ROWS_PER_TURN rows, so the fetch it overlaps with is not held up (a call due at its rate-limit
 * slot goes out on time).
 */
export async function prepareRows(stream: StreamName, rows: StreamRow[]): Promise<PreparedRows> {
  // The same key twice in one statement would make ON CONFLICT fail; the last one wins.
  const byKey = new Map<string, StreamRow>();
  for (const r of rows) byKey.set(r.recordKey, r);
  const unique = [...byKey.values()];
  const specific = STREAMS[stream].columns as readonly string[];
  const valueOf = (r: StreamRow, c: string) => (c === 'partition' ? (r.partition ?? '') : r.columns[c]);

  const common: Record<string, unknown> = {};
  for (const c of ['partition', ...specific.filter((x) => !JSON_COLUMNS.has(x))]) {
    const first = unique[0] ? valueOf(unique[0], c) : undefined;
    if (isPrimitive(first) && unique.every((r) => valueOf(r, c) === first)) common[c] = first;
  }
  const jsonColumns = specific.filter((c) => JSON_COLUMNS.has(c));
  const fromRaw = jsonColumns.filter((c) => unique.some((r) => isObject(r.columns[c]) && isObject(r.raw) && (r.raw as Record<string, unknown>)[c] === r.columns[c]));
  const rest = specific.filter((c) => !(c in common));

  const names = Object.fromEntries(rest.map((c) => [c, JSON.stringify(c)]));
  const volatile = volatileOf(stream);
  const keys: string[] = [];
  const json: string[] = [];
  let sanitized = 0;
  for (const [i, r] of unique.entries()) {
    if (i > 0 && i % ROWS_PER_TURN === 0) await nextTurn();
    // Built from the hash's own canonical texts, which are JSON of the same values (a Date as its
    // ISO string, undefined as absent): nothing is serialised twice.
    const canon = canonicalRow(r, volatile);
    // Keys come from Lark ids (and approval widget ids): cleaned like any value, so the key
    // recorded for sweeps is the key stored.
    walk.sanitized = 0;
    const key = cleanText(r.recordKey);
    const partition = 'partition' in common ? '' : cleanText(r.partition ?? '');
    sanitized += canon.sanitized + walk.sanitized;
    let row = `{"record_key":${JSON.stringify(key)},"content_hash":"${sha256(canon.hashed)}","raw":${canon.raw ?? 'null'}`;
    if (!('partition' in common)) row += `,"partition":${JSON.stringify(partition)}`;
    let mask = 0;
    for (const c of rest) {
      const bit = fromRaw.indexOf(c);
      const v = r.columns[c];
      if (bit >= 0 && isObject(v) && isObject(r.raw) && (r.raw as Record<string, unknown>)[c] === v) mask |= 1 << bit;
      else row += `,${names[c]}:${canon.columns[c] ?? 'null'}`;
    }
    if (mask !== 0) row += `,"$r":${mask}`;
    keys.push(key);
    json.push(`${row}}`);
  }
  const { payload, spans } = jsonbArray(json);
  walk.sanitized = 0;
  const commonText = canonical(common);
  sanitized += walk.sanitized;
  return { stream, keys, payload, spans, common: commonText, commonColumns: Object.keys(common), fromRaw, sanitized };
}

/** JSON texts written as one JSON array in jsonb's binary format, with each element's byte span. */
function jsonbArray(items: string[]): { payload: Buffer; spans: Uint32Array } {
  let size = 2 + Math.max(0, items.length - 1);
  for (const t of items) {
    // Rows are built by concatenation: V8 keeps them as trees of their pieces until flattened.
    // Converting to a number flattens one in place (the "flatstr" trick; the NaN is not used),
    // which makes measuring and copying it below cheaper than walking the tree twice.
    void Number(t);
    size += Buffer.byteLength(t);
  }
  const payload = Buffer.allocUnsafeSlow(1 + size);
  const spans = new Uint32Array(items.length * 2);
  payload[0] = JSONB_VERSION;
  let at = 1;
  payload[at++] = 0x5b; // [
  items.forEach((t, i) => {
    if (i > 0) payload[at++] = 0x2c; // ,
    spans[2 * i] = at;
    at += payload.write(t, at);
    spans[2 * i + 1] = at;
  });
  payload[at] = 0x5d; // ]
  return { payload, spans };
}

/** jsonb_recv's format: version 1 followed by the JSON text. */
const JSONB_VERSION = 1;

/** Some of the rows of a prepared page, as their own jsonb payload. */
function payloadOf(prepared: PreparedRows, only: number[] | undefined): Buffer {
  if (!only) return prepared.payload;
  const parts: Buffer[] = [Buffer.from([JSONB_VERSION, 0x5b])];
  only.forEach((i, n) => {
    if (n > 0) parts.push(Buffer.from([0x2c]));
    parts.push(prepared.payload.subarray(prepared.spans[2 * i], prepared.spans[2 * i + 1]));
  });
  parts.push(Buffer.from([0x5d]));
  return Buffer.concat(parts);
}

/**
 * Upserts one page of a stream. Unchanged rows (same content hash) are left alone, so re-reading
 * an overlap window writes nothing; changed rows get a new change_seq for the records cursor.
 * With `recordSeen`, the page's keys are also recorded for the run's deletion sweep (same statement).
 * `only` picks some of the rows (by index). Returns how many rows were inserted or changed.
 */
export async function writeRows(
  trx: Transaction<Database>,
  tenantKey: string,
  runId: string,
  prepared: PreparedRows,
  opts: { recordSeen: boolean; only?: number[] },
): Promise<number> {
  if ((opts.only ?? prepared.keys).length === 0) return 0;
  const { stream } = prepared;
  const table = sql.table(stream);
  const specific = STREAMS[stream].columns as readonly string[];
  // What each column of the page is made of: the row, the common values, or the row's raw.
  const source = (c: string) => {
    if (prepared.commonColumns.includes(c)) return sql`d.${sql.ref(c)}`;
    const bit = prepared.fromRaw.indexOf(c);
    if (bit >= 0) return sql`case when coalesce((e ->> '$r')::int, 0) & ${sql.lit(1 << bit)} <> 0 then p.raw -> ${sql.lit(c)} else p.${sql.ref(c)} end`;
    return sql`p.${sql.ref(c)}`;
  };
  const inputs = ['partition', ...specific].map((c) => sql`${source(c)} as ${sql.ref(c)}`);
  const columns = ['tenant_key', 'last_run_id', 'record_key', 'partition', 'raw', 'content_hash', ...specific].map((c) => sql.ref(c));
  const values = [
    sql`${tenantKey}::text`,
    sql`${runId}::bigint`,
    ...['record_key', 'partition', 'raw', 'content_hash', ...specific].map((c) => sql.ref(c)),
  ];
  const updates = ['raw', 'content_hash', 'last_run_id', 'partition', ...specific].map((c) => sql`${sql.ref(c)} = excluded.${sql.ref(c)}`);
  const seen = opts.recordSeen
    ? sql`, seen as (
        insert into sync_seen_pages (run_id, stream, partition, keys)
        select ${runId}::bigint, ${stream}::text, "partition", array_agg(record_key) from input group by "partition")`
    : sql``;
  const res = await sql<{ n: number }>`
    with input as materialized (
      select p.record_key, p.content_hash,
             -- jsonb null and SQL NULL differ: a payload that is JSON null is stored as jsonb null, as it always was.
             coalesce(p.raw, 'null'::jsonb) as raw,
             ${sql.join(inputs)}
        from jsonb_array_elements(${payloadOf(prepared, opts.only)}::jsonb) as e
       cross join lateral jsonb_populate_record(null::${table}, e) as p
       cross join jsonb_populate_record(null::${table}, ${prepared.common}::jsonb) as d
    ),
    upserted as (
      insert into ${table} (${sql.join(columns)})
      select ${sql.join(values)} from input
      on conflict (tenant_key, record_key) do update set
        ${sql.join(updates)},
        updated_at = now(),
        deleted_at = null,
        change_seq = nextval('sync_change_seq'),
        change_xid = pg_current_xact_id()
      where ${table}.content_hash is distinct from excluded.content_hash
         or ${table}.deleted_at is not null
      returning 1
    )${seen}
    select count(*)::int as n from upserted`.execute(trx);
  return res.rows[0]?.n ?? 0;
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
    // Cleaned as the stored keys were (see cleanText), so they compare equal.
    g.parents.push(storableText(s.value));
    g.keys.push(...s.keys.map(storableText));
    groups.set(id, g);
  }
  let affected = 0;
  for (const g of groups.values()) {
    const res = await sql`
      update ${sql.table(g.stream)}
         set deleted_at = now(), updated_at = now(), change_seq = nextval('sync_change_seq'), change_xid = pg_current_xact_id()
       where tenant_key = ${tenantKey}
         and ${sql.ref(g.column)} = any(${g.parents}::text[])
         and deleted_at is null
         and not (record_key = any(${g.keys}::text[]))`.execute(trx);
    affected += Number(res.numAffectedRows ?? 0n);
  }
  return affected;
}
