import * as crypto from 'node:crypto';
import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import { columnType, type ColumnType, type StreamRow, type StreamSpec, type VolatileValues } from './streams.js';
import type { ChildScope } from './sync-module.js';
import { newerRead } from './read-seq.js';
import { textChunks } from '../runtime/text-chunks.js';

/** SHA-256 as base64url. crypto.hash (one call, no Hash object per row) exists from Node 20.12 on. */
const sha256: (data: string | Buffer) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'base64url')
    : (data) => crypto.createHash('sha256').update(data).digest('base64url');

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
  let keys = sortKeys(Object.keys(record));
  // A key Postgres cannot store is stored cleaned, so it sorts as its cleaned form ("\u0000"
  // becomes U+FFFD and moves after "\u0001"): the text hashed is then the text of the stored row.
  if (keys.some((k) => storableText(k) !== k)) {
    keys = keys
      .map((k) => [storableText(k), k] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, k]) => k);
  }
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

export function contentHash(r: StreamRow, volatile?: VolatileValues): string {
  return sha256((fastRow(r, volatile) ?? canonicalRow(r, volatile)).hashed);
}

// ---------------------------------------------------------------------------------------------
// The same canonical texts, made by JSON.stringify. canonical() is JSON.stringify with every
// object's keys in sorted order, `undefined` members left out (as JSON.stringify does), strings
// escaped the way JSON.stringify escapes them, and cleaning where that escaping shows a NUL or a
// lone surrogate. So a copy of the row whose objects hold their keys in sorted order, given to
// JSON.stringify (native, several times quicker than the walk above), yields the very same text,
// except where JS objects cannot hold keys in that order or where a value needs cleaning: then
// the row takes the walk above. Those cases are:
// - a key that is an array index ("0", "17"): JS puts such keys first, in numeric order;
// - a key `__proto__`, which an assignment would not create as a member;
// - anything JSON.parse does not make (a Date, a class instance, a function, a bigint);
// - a text with `\u` in it: JSON.stringify escapes NUL, lone surrogates and other control
//   characters that way, and the walk decides what to clean.
// ---------------------------------------------------------------------------------------------

const fast = {
  /** the row needs the walk */
  bail: false,
  volatile: undefined as VolatileValues | undefined,
  sawVolatile: false,
  skipVolatile: false,
};

/** An array index as JS orders it: a canonical decimal integer below 2^32 - 1. */
function isArrayIndex(key: string): boolean {
  if (key.length > 10 || (key.length > 1 && key.charCodeAt(0) === 48)) return false;
  for (let i = 0; i < key.length; i += 1) {
    const c = key.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return Number(key) < 4_294_967_295;
}

/** `v` with the keys of every object in sorted order: `v` itself where nothing had to change. */
function sortedValue(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) {
    if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') fast.bail = true;
    return v;
  }
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i += 1) {
      const e: unknown = v[i];
      const s = typeof e === 'object' && e !== null ? sortedValue(e) : e;
      if (typeof e === 'function' || typeof e === 'symbol' || typeof e === 'bigint') fast.bail = true;
      if (out) out.push(s);
      else if (s !== e) {
        out = v.slice(0, i);
        out.push(s);
      }
    }
    return out ?? v;
  }
  return sortedObject(v as Record<string, unknown>, undefined);
}

/**
 * An object with its keys in sorted order. `shared` gives, for a member, a sorted copy already
 * made of the very same object (Base's columns hold objects found in raw).
 */
function sortedObject(o: Record<string, unknown>, shared: ((v: unknown, key: string) => unknown) | undefined): unknown {
  const proto: unknown = Object.getPrototypeOf(o);
  if ((proto !== Object.prototype && proto !== null) || typeof o.toJSON === 'function') {
    fast.bail = true;
    return o;
  }
  const keys = Object.keys(o);
  let inOrder = true;
  for (let i = 0; i < keys.length; i += 1) {
    const k = keys[i]!;
    const c = k.charCodeAt(0);
    if ((c >= 48 && c <= 57 && isArrayIndex(k)) || k === '__proto__') {
      fast.bail = true;
      return o;
    }
    if (i > 0 && keys[i - 1]! > k) inOrder = false;
  }
  const volatile = fast.volatile !== undefined && Object.prototype.hasOwnProperty.call(o, fast.volatile.objectsWith) ? fast.volatile : undefined;
  if (volatile) fast.sawVolatile = true;
  const skip = volatile !== undefined && fast.skipVolatile ? volatile.keys : undefined;
  if (!inOrder) sortKeys(keys);
  let out: Record<string, unknown> | undefined = inOrder && !skip ? undefined : {};
  for (let i = 0; i < keys.length; i += 1) {
    const k = keys[i]!;
    const v = o[k];
    if (v === undefined || skip?.includes(k)) continue;
    const s = typeof v !== 'object' || v === null ? sortedValue(v) : ((shared && shared(v, k)) ?? sortedValue(v));
    if (fast.bail) return o;
    if (out) out[k] = s;
    else if (s !== v) {
      out = {};
      for (let j = 0; j < i; j += 1) {
        const kj = keys[j]!;
        if (o[kj] !== undefined) out[kj] = o[kj];
      }
      out[k] = s;
    }
  }
  return out ?? o;
}

interface RowTexts {
  /** canonical({ raw, columns }) of the row as stored */
  text: string;
  /** the text the content hash is taken of */
  hashed: string;
  /** canonical(raw), undefined when the row has none */
  raw: string | undefined;
  /** the text of one column's value (valid JSON of it) */
  column(name: string): string | undefined;
  sanitized: number;
  /** every text of the row is stored as it is (no NUL, no lone surrogate) */
  storable: boolean;
}

/** canonical texts of one pass over the row (volatile members left out or not). */
function fastTexts(r: StreamRow): { text: string; raw: string | undefined; columns: Record<string, unknown> } | undefined {
  const raw = r.raw === undefined ? undefined : sortedValue(r.raw);
  if (fast.bail) return undefined;
  const rawObject = isPlainObject(r.raw) && isPlainObject(raw) ? (r.raw as Record<string, unknown>) : undefined;
  const columns = sortedObject(r.columns, rawObject ? (v, k) => (rawObject[k] === v ? (raw as Record<string, unknown>)[k] : undefined) : undefined) as Record<string, unknown>;
  if (fast.bail) return undefined;
  const rawText = raw === undefined ? undefined : (JSON.stringify(raw) ?? 'null');
  const columnsText = JSON.stringify(columns);
  const text = rawText === undefined ? `{"columns":${columnsText}}` : `{"columns":${columnsText},"raw":${rawText}}`;
  return text.includes('\\u') ? undefined : { text, raw: rawText, columns };
}

/** The row's texts by JSON.stringify, or undefined when the row needs the walk (see above). */
function fastRow(r: StreamRow, volatile: VolatileValues | undefined): RowTexts | undefined {
  fast.bail = false;
  fast.volatile = volatile;
  fast.sawVolatile = false;
  try {
    const stored = fastTexts(r);
    if (!stored) return undefined;
    let hashed = stored.text;
    if (fast.sawVolatile) {
      fast.skipVolatile = true;
      const forHash = fastTexts(r);
      if (!forHash) return undefined;
      hashed = forHash.text;
    }
    const { columns } = stored;
    return { text: stored.text, hashed, raw: stored.raw, column: (name) => (columns[name] === undefined ? undefined : JSON.stringify(columns[name])), sanitized: 0, storable: true };
  } finally {
    fast.volatile = undefined;
    fast.skipVolatile = false;
  }
}

/** The row's texts by the walk. */
function walkedRow(r: StreamRow, volatile: VolatileValues | undefined): RowTexts {
  const c = canonicalRow(r, volatile);
  return { text: c.text, hashed: c.hashed, raw: c.raw, column: (name) => c.columns[name], sanitized: c.sanitized, storable: false };
}

// ---------------------------------------------------------------------------------------------
// Writing a page: one binary array per input column (PostgreSQL's array_recv format), expanded by
// unnest() in one INSERT ... ON CONFLICT. Postgres parses only what it must (each row's raw JSON,
// into jsonb) and takes the rest as it comes: text as text, timestamps as 64-bit microseconds,
// integers and booleans as such. Earlier pages went as one JSON array of row objects, which
// Postgres parsed whole and took apart again with jsonb_populate_record: 3.3 s of its CPU per
// 100,000 Base records against 2.0 s this way (.scratch/pgwrite.ts, PostgreSQL 18).
// ---------------------------------------------------------------------------------------------

/** jsonb_recv's format: version 1 followed by the JSON text. */
const JSONB_VERSION = 1;
const OIDS = { text: 25, integer: 23, boolean: 16, timestamptz: 1184, jsonb: 3802 } as const satisfies Record<ColumnType, number>;
const ARRAY_TYPES = { text: 'text[]', integer: 'int4[]', boolean: 'bool[]', timestamptz: 'timestamptz[]', jsonb: 'jsonb[]' } as const satisfies Record<ColumnType, string>;

/** Milliseconds from 1970 to 2000-01-01T00:00Z, PostgreSQL's epoch. */
const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 4_294_967_296;

/**
 * Room a string takes in UTF-8: at most 3 bytes per UTF-16 unit, measured exactly when that bound
 * is large. Reserving three times a 10 MB Markdown body (docs_content), in its column's array and
 * again for the row's text hashed in the raw array, held about 60 MB of Buffers per such page.
 */
const EXACT_ROOM_FROM = 64 * 1024;
const utf8Room = (s: string) => (s.length < EXACT_ROOM_FROM ? 3 * s.length : Buffer.byteLength(s, 'utf8'));
/** A finished array wasting more than this (doubling, or room for a hashed row text) is copied to its size. */
const SHRINK_ABOVE = 1024 * 1024;
/** Sizes remembered for the next page (lastSizes) are capped: one huge page must not size every page after it. */
const MAX_SIZE_HINT = 4 * 1024 * 1024;

/**
 * A text value longer than this (UTF-16 units) is not bound in the page's statement but appended
 * to its row afterwards, in parts of BIG_TEXT_PART, in the same transaction. Bound whole, a 10 MB
 * Markdown body (docs_content) was copied three times over on its way out (its column array, the
 * driver's parameter buffer, the message buffer) and held about 50 MB of Buffers at once, which
 * set the docs connector's peak resident set.
 */
export const BIG_TEXT_CHARS = 1024 * 1024;
/**
 * UTF-16 units of a big text per statement that appends it (at most 768 KB of UTF-8 in the
 * driver's buffers), and per piece of it escaped and hashed.
 */
const BIG_TEXT_PART = 256 * 1024;

/** A one-dimensional binary array being filled element by element. */
class BinaryArray {
  private buf: Buffer;
  private at = 20;
  private count = 0;

  constructor(
    readonly type: ColumnType,
    capacity: number,
  ) {
    this.buf = Buffer.allocUnsafe(Math.max(64, capacity));
  }

  private room(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  null(): void {
    this.room(4);
    this.buf.writeInt32BE(-1, this.at);
    this.at += 4;
    this.count += 1;
  }

  text(s: string): void {
    this.room(4 + utf8Room(s));
    const len = this.buf.write(s, this.at + 4);
    this.buf.writeInt32BE(len, this.at);
    this.at += 4 + len;
    this.count += 1;
  }

  /** A JSON text as jsonb's binary input: a version byte, then the text. */
  json(s: string): void {
    this.room(5 + utf8Room(s));
    const len = this.buf.write(s, this.at + 5);
    this.buf.writeInt32BE(len + 1, this.at);
    this.buf[this.at + 4] = JSONB_VERSION;
    this.at += 5 + len;
    this.count += 1;
  }

  /**
   * The content hash and the raw JSON element at once, for a row whose hashed text is
   * `{"columns":…,"raw":<raw>}`: that text is encoded once, hashed in place, and its tail (the raw
   * JSON) kept as the element.
   */
  jsonTailHashed(text: string, raw: string): string {
    this.room(5 + utf8Room(text));
    const start = this.at + 5;
    const len = this.buf.write(text, start);
    const end = start + len;
    const hash = sha256(this.buf.subarray(start, end));
    // The raw JSON's bytes: everything but the closing brace, back to where raw began.
    const rawBytes = len === text.length ? raw.length : Buffer.byteLength(raw);
    this.buf.copyWithin(start, end - 1 - rawBytes, end - 1);
    this.buf.writeInt32BE(rawBytes + 1, this.at);
    this.buf[this.at + 4] = JSONB_VERSION;
    this.at += 5 + rawBytes;
    this.count += 1;
    return hash;
  }

  int4(v: number): void {
    this.room(8);
    this.buf.writeInt32BE(4, this.at);
    this.buf.writeInt32BE(v, this.at + 4);
    this.at += 8;
    this.count += 1;
  }

  bool(v: boolean): void {
    this.room(5);
    this.buf.writeInt32BE(1, this.at);
    this.buf[this.at + 4] = v ? 1 : 0;
    this.at += 5;
    this.count += 1;
  }

  /** A timestamptz from milliseconds since 1970 (as microseconds since 2000). */
  timestamp(ms: number): void {
    this.room(12);
    this.buf.writeInt32BE(8, this.at);
    const us = (ms - PG_EPOCH_MS) * 1000;
    if (Number.isSafeInteger(us)) {
      const hi = Math.floor(us / TWO_32);
      this.buf.writeInt32BE(hi, this.at + 4);
      this.buf.writeUInt32BE(us - hi * TWO_32, this.at + 8);
    } else {
      this.buf.writeBigInt64BE(BigInt(ms - PG_EPOCH_MS) * 1000n, this.at + 4);
    }
    this.at += 12;
    this.count += 1;
  }

  /** The array: ndim 1, no null bitmap flag needed (array_recv counts them), element type, size, lower bound 1. */
  finish(): Buffer {
    this.buf.writeInt32BE(1, 0);
    this.buf.writeInt32BE(0, 4);
    this.buf.writeInt32BE(OIDS[this.type], 8);
    this.buf.writeInt32BE(this.count, 12);
    this.buf.writeInt32BE(1, 16);
    // The array lives until its page commits (pages read ahead included): a large spare part
    // would live as long, so it is given back now.
    if (this.buf.length - this.at > SHRINK_ABOVE) return Buffer.from(this.buf.subarray(0, this.at));
    return this.buf.subarray(0, this.at);
  }
}


const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const digit = (s: string, i: number) => s.charCodeAt(i) - 48;
const digits = (s: string, from: number, n: number) => {
  let v = 0;
  for (let i = from; i < from + n; i += 1) {
    const d = digit(s, i);
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
};

/**
 * Milliseconds of a timestamp written as Date#toISOString writes it (`2024-04-09T22:32:52.426Z`,
 * years 1000 to 9999), or NaN for any other text, which Postgres then parses itself.
 */
export function isoMillis(s: string): number {
  if (s.length !== 24 || s[4] !== '-' || s[7] !== '-' || s[10] !== 'T' || s[13] !== ':' || s[16] !== ':' || s[19] !== '.' || s[23] !== 'Z') return Number.NaN;
  const y = digits(s, 0, 4);
  const mo = digits(s, 5, 2);
  const d = digits(s, 8, 2);
  const h = digits(s, 11, 2);
  const mi = digits(s, 14, 2);
  const se = digits(s, 17, 2);
  const ms = digits(s, 20, 3);
  if (y < 1000 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59 || ms < 0) return Number.NaN;
  const leap = mo === 2 && y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  if (d > DAYS_IN_MONTH[mo - 1]! + (leap ? 1 : 0)) return Number.NaN;
  return Date.UTC(y, mo - 1, d, h, mi, se, ms);
}

const isInt4 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= -2_147_483_648 && v <= 2_147_483_647;

/**
 * How one column of a page is sent: `typed` as its own type (every value fits it), `json` as each
 * value's JSON, turned into the column's type by Postgres exactly as jsonb_populate_record did
 * (`#>> '{}'`, then the type's input), or `common`: one value for every row of the page.
 */
type ColumnPlan =
  | { column: string; type: ColumnType; kind: 'typed' | 'json' }
  | { column: string; type: ColumnType; kind: 'common'; value: string | number | boolean };

/**
 * One stream's rows of a page, hashed and encoded once, ready to be written (see above). A value
 * every row shares (Base's app_token, table_id, partition) is sent once; a JSON column that is the
 * very object found under its name in `raw` (Base's fields, created_by, last_modified_by) is taken
 * from `raw` by Postgres instead of being sent twice.
 */
export interface PreparedRows {
  stream: StreamSpec;
  /** record keys, without repeats */
  keys: string[];
  /** what each stored column is made of, `partition` first */
  plan: ColumnPlan[];
  /** JSON columns some rows take from raw; bit i of a row's mask stands for fromRaw[i] */
  fromRaw: string[];
  /**
   * Binary arrays: record_key, content_hash, raw, then one per `typed` or `json` column of `plan`,
   * then the masks when `fromRaw` is not empty. Buffers live outside the JS heap and go as soon as
   * the page is committed.
   */
  arrays: Buffer[];
  /** values stored with U+FFFD in place of a NUL or a lone surrogate */
  sanitized: number;
  /**
   * Text values over BIG_TEXT_CHARS (already cleaned): the arrays hold '' in their place, and
   * writeRows appends them to the rows it wrote. `index` is the row's among `keys`.
   */
  bigTexts: Array<{ index: number; column: string; value: string }>;
}

const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null;

/** Rows hashed between two yields to the event loop (about a millisecond's work). */
const ROWS_PER_TURN = 100;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Stands for a big text while its row's canonical text is made: private-use characters, which JSON leaves as they are. */
const bigMark = (n: number) => `\uE000larksync-big-text-${n}\uE001`;

/**
 * The texts of a row holding big texts (over BIG_TEXT_CHARS, already cleaned: `cleaned`), made
 * with a mark in place of each, and the content hash of the row as if they were in place: the text
 * is hashed in parts, the marks' JSON replaced by the big texts' JSON escaped chunk by chunk. Made
 * whole, the canonical text of a 10 MB Markdown row (and JSON.stringify of its columns before it)
 * held another 20 MB or more of strings while the row was prepared. Undefined when a mark is not
 * found exactly once (some value holding the mark's text): the caller then makes the texts whole.
 */
function streamedHash(r: StreamRow, cleaned: Map<string, string>, volatile: VolatileValues | undefined): { texts: RowTexts; hash: string } | undefined {
  const columns = { ...r.columns };
  const marks: Array<{ mark: string; value: string }> = [];
  for (const [column, value] of cleaned) {
    const mark = bigMark(marks.length);
    columns[column] = mark;
    marks.push({ mark: JSON.stringify(mark), value });
  }
  const marked = { ...r, columns };
  const texts = fastRow(marked, volatile) ?? walkedRow(marked, volatile);
  const found: Array<{ at: number; mark: string; value: string }> = [];
  for (const m of marks) {
    const at = texts.hashed.indexOf(m.mark);
    // A volatile member left out of the hash: nothing to put in.
    if (at < 0 && !texts.text.includes(m.mark)) return undefined;
    if (at < 0) continue;
    if (texts.hashed.indexOf(m.mark, at + 1) >= 0) return undefined;
    found.push({ at, ...m });
  }
  found.sort((a, b) => a.at - b.at);
  const h = crypto.createHash('sha256');
  let from = 0;
  for (const f of found) {
    h.update(texts.hashed.slice(from, f.at));
    h.update('"');
    // JSON of the whole text is the JSON of its chunks, quotes off, when no surrogate pair is cut
    // (a cleaned text holds no lone surrogate, and a cut pair would be escaped as two).
    for (const chunk of textChunks(f.value, BIG_TEXT_PART)) h.update(JSON.stringify(chunk).slice(1, -1));
    h.update('"');
    from = f.at + f.mark.length;
  }
  h.update(texts.hashed.slice(from));
  return { texts, hash: h.digest('base64url') };
}

/** Bytes each array of a stream took last time, so that most pages fill theirs without growing them. */
const lastSizes = new Map<string, number>();

/** Whether every value of a column fits its type's binary form. */
function fitsTyped(type: ColumnType, values: unknown[]): boolean {
  for (const v of values) {
    if (v === null || v === undefined) continue;
    const ok =
      type === 'text' ? typeof v === 'string' : type === 'integer' ? isInt4(v) : type === 'boolean' ? typeof v === 'boolean' : type === 'timestamptz' ? typeof v === 'string' && !Number.isNaN(isoMillis(v)) : false;
    if (!ok) return false;
  }
  return true;
}

/**
 * Done while earlier pages commit and the next one is fetched. It yields to the event loop every
 * ROWS_PER_TURN rows, so the fetch it overlaps with is not held up (a call due at its rate-limit
 * slot goes out on time). `turn` replaces that yield for a caller whose other work must go first
 * (the Base write lane: no slice runs while an answer is due, see write-applier.ts).
 */
export async function prepareRows(stream: StreamSpec, rows: StreamRow[], turn: () => Promise<void> = nextTurn): Promise<PreparedRows> {
  // The same key twice in one statement would make ON CONFLICT fail; the last one wins.
  const byKey = new Map<string, StreamRow>();
  for (const r of rows) byKey.set(r.recordKey, r);
  const unique = [...byKey.values()];
  const specific = stream.columns;
  const valueOf = (r: StreamRow, c: string) => (c === 'partition' ? (r.partition ?? '') : r.columns[c]);

  let sanitized = 0;
  const plan: ColumnPlan[] = [];
  for (const c of ['partition', ...specific]) {
    const type: ColumnType = c === 'partition' ? 'text' : columnType(stream, c);
    const first = unique[0] ? valueOf(unique[0], c) : undefined;
    // Sent once as text and cast: the same as jsonb_populate_record made of it for a string, a
    // boolean or an integer (other numbers print differently in JS and in Postgres).
    const commonable = (typeof first === 'string' && first.length <= BIG_TEXT_CHARS) || typeof first === 'boolean' || (typeof first === 'number' && Number.isSafeInteger(first));
    if (type !== 'jsonb' && commonable && unique.every((r) => valueOf(r, c) === first)) {
      walk.sanitized = 0;
      const value = typeof first === 'string' ? cleanText(first) : first;
      sanitized += walk.sanitized;
      plan.push({ column: c, type, kind: 'common', value });
      continue;
    }
    const typed = type !== 'jsonb' && fitsTyped(type, unique.map((r) => valueOf(r, c)));
    plan.push({ column: c, type, kind: typed ? 'typed' : 'json' });
  }
  const fromRaw = specific.filter(
    (c) => columnType(stream, c) === 'jsonb' && unique.some((r) => isObject(r.columns[c]) && isObject(r.raw) && (r.raw as Record<string, unknown>)[c] === r.columns[c]),
  );

  const sized = (name: string, fallback: number) => lastSizes.get(`${stream.name}.${name}`) ?? fallback;
  const keyArray = new BinaryArray('text', sized('record_key', unique.length * 64));
  const hashArray = new BinaryArray('text', unique.length * 48);
  const rawArray = new BinaryArray('jsonb', sized('raw', unique.length * 1024));
  const perRow = plan.filter((p) => p.kind !== 'common');
  const columnArrays = perRow.map((p) => new BinaryArray(p.kind === 'typed' ? p.type : 'jsonb', sized(p.column, unique.length * 32)));
  const maskArray = fromRaw.length > 0 ? new BinaryArray('integer', unique.length * 8) : undefined;

  const volatile = stream.volatile;
  const keys: string[] = [];
  const bigTexts: PreparedRows['bigTexts'] = [];
  const bigColumns = perRow.filter((p) => p.kind === 'typed' && p.type === 'text' && p.column !== 'partition').map((p) => p.column);
  for (const [i, r] of unique.entries()) {
    if (i > 0 && i % ROWS_PER_TURN === 0) await turn();
    // Texts over BIG_TEXT_CHARS, cleaned: stored apart (writeRows) and hashed in parts.
    let big: Map<string, string> | undefined;
    for (const c of bigColumns) {
      const v = r.columns[c];
      if (typeof v === 'string' && v.length > BIG_TEXT_CHARS) (big ??= new Map()).set(c, storableText(v));
    }
    const streamed = big ? streamedHash(r, big, volatile) : undefined;
    // The marked row's texts do not count the big texts' cleaning (made whole, the walk counts it).
    if (streamed) for (const [c, clean] of big!) if (clean !== r.columns[c]) sanitized += 1;
    const texts = streamed?.texts ?? fastRow(r, volatile) ?? walkedRow(r, volatile);
    // Keys come from Lark ids (and approval widget ids): cleaned like any value, so the key
    // recorded for sweeps is the key stored.
    walk.sanitized = 0;
    const key = cleanText(r.recordKey);
    sanitized += texts.sanitized;
    keys.push(key);
    keyArray.text(key);
    if (streamed) {
      hashArray.text(streamed.hash);
      rawArray.json(texts.raw ?? 'null');
    } else if (texts.raw !== undefined && texts.hashed === texts.text && !big) {
      hashArray.text(rawArray.jsonTailHashed(texts.text, texts.raw));
    } else {
      hashArray.text(sha256(texts.hashed));
      rawArray.json(texts.raw ?? 'null');
    }
    let mask = 0;
    perRow.forEach((p, n) => {
      const out = columnArrays[n]!;
      const v = valueOf(r, p.column);
      if (p.column === 'partition') {
        out.text(cleanText(v as string));
        return;
      }
      const bit = fromRaw.indexOf(p.column);
      if (bit >= 0 && isObject(v) && isObject(r.raw) && (r.raw as Record<string, unknown>)[p.column] === v) {
        mask |= 1 << bit;
        out.null();
        return;
      }
      if (v === null || v === undefined) {
        out.null();
        return;
      }
      if (p.kind === 'json') {
        out.json(texts.column(p.column) ?? 'null');
        return;
      }
      switch (p.type) {
        case 'text': {
          const clean = big?.get(p.column);
          if (clean !== undefined) {
            bigTexts.push({ index: i, column: p.column, value: clean });
            out.text('');
          } else {
            out.text(texts.storable ? (v as string) : storableText(v as string));
          }
          break;
        }
        case 'integer':
          out.int4(v as number);
          break;
        case 'boolean':
          out.bool(v as boolean);
          break;
        case 'timestamptz':
          out.timestamp(isoMillis(v as string));
          break;
        case 'jsonb':
          break;
      }
    });
    sanitized += walk.sanitized;
    maskArray?.int4(mask);
  }
  const arrays = [keyArray, hashArray, rawArray, ...columnArrays, ...(maskArray ? [maskArray] : [])].map((a) => a.finish());
  lastSizes.set(`${stream.name}.record_key`, Math.min(MAX_SIZE_HINT, arrays[0]!.length + 64));
  lastSizes.set(`${stream.name}.raw`, Math.min(MAX_SIZE_HINT, arrays[2]!.length + 1024));
  perRow.forEach((p, n) => lastSizes.set(`${stream.name}.${p.column}`, Math.min(MAX_SIZE_HINT, arrays[3 + n]!.length + 64)));
  return { stream, keys, plan, fromRaw, arrays, sanitized, bigTexts };
}

/**
 * The CTEs of one stream's upsert (`input<suffix>`, `upserted<suffix>`, and `seen<suffix>` when the
 * run records seen keys), for writeRows' statement and for several streams' in one (writeStreams).
 */
function upsertCtes(
  tenantKey: string,
  runId: string | null,
  prepared: PreparedRows,
  opts: { recordSeen: boolean; only?: number[]; readSeq?: string },
  suffix: string,
): { ctes: RawBuilder<unknown>; big: PreparedRows['bigTexts'] } {
  // Every row: no need to pick them.
  const only = opts.only && opts.only.length < prepared.keys.length ? opts.only : undefined;
  const { stream, plan, fromRaw, arrays } = prepared;
  const table = sql.table(stream.name);
  const input = sql.raw(`input${suffix}`);
  const upserted = sql.raw(`upserted${suffix}`);
  const perRow = plan.filter((p) => p.kind !== 'common');
  const inputNames = ['record_key', 'content_hash', 'raw', ...perRow.map((_, n) => `c${n}`), ...(fromRaw.length > 0 ? ['m'] : [])];
  const arrayTypes = ['text[]', 'text[]', 'jsonb[]', ...perRow.map((p) => ARRAY_TYPES[p.kind === 'typed' ? p.type : 'jsonb']), ...(fromRaw.length > 0 ? ['int4[]'] : [])];
  const unnested = sql.join(arrays.map((a, i) => sql`${a}::${sql.raw(arrayTypes[i]!)}`));
  // What each stored column is made of: a value shared by every row, the row's own, or its raw's.
  const source = (p: ColumnPlan): RawBuilder<unknown> => {
    if (p.kind === 'common') return sql`${p.value}::${sql.raw(p.type)}`;
    const col = sql.ref(`u.c${perRow.indexOf(p)}`);
    const own = p.kind === 'typed' || p.type === 'jsonb' ? col : sql`(${col} #>> '{}')::${sql.raw(p.type)}`;
    const bit = fromRaw.indexOf(p.column);
    return bit >= 0 ? sql`case when u.m & ${sql.lit(1 << bit)} <> 0 then u.raw -> ${sql.lit(p.column)} else ${own} end` : own;
  };
  const inputs = plan.map((p) => sql`${source(p)} as ${sql.ref(p.column)}`);
  const specific = stream.columns;
  const columns = ['tenant_key', 'last_run_id', 'read_seq', 'record_key', 'partition', 'raw', 'content_hash', ...specific].map((c) => sql.ref(c));
  const values = [
    sql`${tenantKey}::text`,
    sql`${runId}::bigint`,
    sql`${opts.readSeq ?? null}::bigint`,
    ...['record_key', 'partition', 'raw', 'content_hash', ...specific].map((c) => sql.ref(c)),
  ];
  const updates = ['raw', 'content_hash', 'last_run_id', 'partition', ...specific].map((c) => sql`${sql.ref(c)} = excluded.${sql.ref(c)}`);
  const seen = opts.recordSeen
    ? sql`, ${sql.raw(`seen${suffix}`)} as (
        insert into sync_seen_pages (run_id, stream, partition, keys)
        select ${runId}::bigint, ${stream.name}::text, "partition", array_agg(record_key) from ${input} group by "partition")`
    : sql``;
  const pick = only ? sql`where u.ord = any(${only.map((i) => i + 1)}::int4[])` : sql``;
  const chosen = only ? new Set(only) : undefined;
  const big = prepared.bigTexts.filter((b) => !chosen || chosen.has(b.index));
  const ctes = sql`${input} as materialized (
      select u.record_key, u.content_hash, u.raw, ${sql.join(inputs)}
        from unnest(${unnested}) with ordinality as u(${sql.join(inputNames.map((n) => sql.ref(n)))}, ord)
       ${pick}
    ),
    ${upserted} as (
      insert into ${table} (${sql.join(columns)})
      select ${sql.join(values)} from ${input}
      on conflict (tenant_key, record_key) do update set
        ${sql.join(updates)},
        updated_at = now(),
        deleted_at = null,
        change_seq = nextval('sync_change_seq'),
        change_xid = pg_current_xact_id(),
        read_seq = greatest(${table}.read_seq, excluded.read_seq)
      where (${table}.content_hash is distinct from excluded.content_hash
             or ${table}.deleted_at is not null)
        and ${newerRead(table, sql`excluded.read_seq`)}
      returning ${big.length > 0 ? sql`record_key` : sql`1`}
    )${seen}`;
  return { ctes, big };
}

/**
 * Several streams' rows from one read (a change event's re-read: an approval instance with its
 * form fields, tasks and timeline) in one statement, an upsert per stream in a data-modifying
 * WITH, where writeRows took a round trip per stream. Streams are distinct tables, so no row is
 * written twice in the statement. Rows with big texts (docs) go through writeRows. Returns the
 * rows inserted or changed.
 */
export async function writeStreams(trx: Transaction<Database>, tenantKey: string, list: PreparedRows[], opts: { readSeq?: string }): Promise<number> {
  const some = list.filter((p) => p.keys.length > 0);
  const tables = new Set(some.map((p) => p.stream.name));
  if (some.length < 2 || tables.size < some.length || some.some((p) => p.bigTexts.length > 0)) {
    let n = 0;
    for (const p of some) n += await writeRows(trx, tenantKey, null, p, { recordSeen: false, readSeq: opts.readSeq });
    return n;
  }
  const parts = some.map((p, i) => upsertCtes(tenantKey, null, p, { recordSeen: false, readSeq: opts.readSeq }, String(i)));
  const res = await sql<{ n: number }>`
    with ${sql.join(parts.map((p) => p.ctes))}
    select ${sumOfCounts(parts.map((_, i) => `upserted${i}`))}::int as n`.execute(trx);
  return res.rows[0]?.n ?? 0;
}

/** The rows the data-modifying CTEs `names` returned, together (a statement of several writes). */
const sumOfCounts = (names: string[]) => sql`(${sql.join(names.map((n) => sql`(select count(*) from ${sql.raw(n)})`), sql` + `)})`;

/**
 * Upserts one page of a stream. Unchanged rows (same content hash) are left alone, so re-reading
 * an overlap window writes nothing; changed rows get a new change_seq for the records cursor.
 * With `recordSeen`, the page's keys are also recorded for the run's deletion sweep (same statement).
 * `only` picks some of the rows (by index). Returns how many rows were inserted or changed.
 */
export async function writeRows(
  trx: Transaction<Database>,
  tenantKey: string,
  /** the run that wrote the rows; null for a write through the API (writes/) */
  runId: string | null,
  prepared: PreparedRows,
  opts: {
    recordSeen: boolean;
    only?: number[];
    /**
     * The read the rows come from (read-seq.ts): a stored row written by a later read is left
     * alone, so an older page committed after an event's re-read cannot put older data back.
     * Without it (the write API's read-back) rows are written as before and keep their number.
     */
    readSeq?: string;
  },
): Promise<number> {
  if ((opts.only ?? prepared.keys).length === 0) return 0;
  const { ctes, big } = upsertCtes(tenantKey, runId, prepared, opts, '');
  const { stream } = prepared;
  // With big texts to append, the statement names the rows it wrote: a row left alone (unchanged,
  // or written by a later read) already holds its whole text and must not get it twice.
  const counted = big.length > 0 ? sql`select record_key from upserted` : sql`select count(*)::int as n from upserted`;
  const res = await sql<{ n?: number; record_key?: string }>`
    with ${ctes}
    ${counted}`.execute(trx);
  if (big.length === 0) return res.rows[0]?.n ?? 0;
  const written = new Set(res.rows.map((r) => r.record_key));
  for (const b of big) {
    const key = prepared.keys[b.index]!;
    if (written.has(key)) await appendText(trx, tenantKey, stream.name, b.column, key, b.value);
  }
  return res.rows.length;
}

/** Appends a big text to the row just written with '' in its place, a part per statement. */
async function appendText(trx: Transaction<Database>, tenantKey: string, table: string, column: string, key: string, value: string): Promise<void> {
  // Surrogate pairs stay whole: split, each half would be stored as U+FFFD.
  for (const part of textChunks(value, BIG_TEXT_PART)) {
    await sql`update ${sql.table(table)} set ${sql.ref(column)} = ${sql.ref(column)} || ${part}::text
               where tenant_key = ${tenantKey} and record_key = ${key}`.execute(trx);
  }
}

/**
 * Soft-deletes children that their parent no longer lists. Scopes of one stream and parent column
 * are merged into one UPDATE: record keys are unique per tenant, so "not among the keys any of
 * these parents listed" is the same test as per parent. Returns the rows marked deleted.
 */
export async function replaceChildren(trx: Transaction<Database>, tenantKey: string, scopes: ChildScope[], readSeq?: string): Promise<number> {
  const groups = new Map<string, { stream: string; column: string; parents: string[]; keys: string[] }>();
  for (const s of scopes) {
    const id = `${s.stream}\u0000${s.column}`;
    const g = groups.get(id) ?? { stream: s.stream, column: s.column, parents: [], keys: [] };
    // Cleaned as the stored keys were (see cleanText), so they compare equal.
    g.parents.push(storableText(s.value));
    g.keys.push(...s.keys.map(storableText));
    groups.set(id, g);
  }
  // One statement for all the scopes, an UPDATE each (a data-modifying WITH), where a statement
  // each cost a round trip per child stream of every approval instance re-read. A stream named by
  // two groups (two parent columns) gets statements of its own: one statement must not update a
  // row twice.
  const all = [...groups.values()];
  const streams = all.map((g) => g.stream);
  const batches = new Set(streams).size === streams.length ? [all] : all.map((g) => [g]);
  let affected = 0;
  for (const batch of batches) {
    const updates = batch.map(
      (g, i) => sql`${sql.raw(`u${i}`)} as (
        update ${sql.table(g.stream)}
           set deleted_at = now(), updated_at = now(), change_seq = nextval('sync_change_seq'), change_xid = pg_current_xact_id(),
               read_seq = greatest(read_seq, ${readSeq ?? null}::bigint)
         where tenant_key = ${tenantKey}
           and ${sql.ref(g.column)} = any(${g.parents}::text[])
           and deleted_at is null
           and ${newerRead(sql.table(g.stream), sql`${readSeq ?? null}::bigint`)}
           and not (record_key = any(${g.keys}::text[]))
        returning 1)`,
    );
    const res = await sql<{ n: string }>`with ${sql.join(updates)} select ${sumOfCounts(batch.map((_, i) => `u${i}`))}::text as n`.execute(trx);
    affected += Number(res.rows[0]?.n ?? 0);
  }
  return affected;
}
