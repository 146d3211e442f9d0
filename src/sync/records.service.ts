import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import { FeedReadAhead, type ReadAheadOptions } from './feed-read-ahead.js';
import { columnType, type StreamCatalog, type StreamName, type StreamSpec } from './streams.js';

export interface RecordView {
  key: string;
  deletedAt: string | null;
  updatedAt: string;
  data: Record<string, unknown>;
}

export interface RecordPage {
  records: RecordView[];
  /** the next page now, or null when this page reached the end of what is visible */
  nextCursor: string | null;
  /** where to ask again later for what changes after this page; never null */
  resumeCursor: string;
}

/** A row's place in the feed: the writing transaction's id, then the sequence value it drew. */
export interface Position {
  xid: bigint;
  seq: bigint;
}

export interface ListOptions {
  limit: number;
  cursor?: string;
  updatedSince?: Date;
}

const MAX_BIGINT = 2n ** 63n - 1n;
const START: Position = { xid: 0n, seq: 0n };

export const encodeCursor = (p: Position) => Buffer.from(`v2:${p.xid}.${p.seq}`).toString('base64url');

function decodeCursor(cursor: string): Position {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const invalid = () => new AppError(400, 'invalid_cursor', 'cursor is not one this API returned; start without it');
  // v1 cursors (a bare change_seq) came before transaction ids were stored: the rows they point
  // into all carry transaction id 0 (see the change-feed migration), so they resume where they were.
  const m = /^v1:(\d{1,19})$/.exec(text) ?? /^v2:(\d{1,19})\.(\d{1,19})$/.exec(text);
  if (!m) throw invalid();
  const p = m[2] === undefined ? { xid: 0n, seq: BigInt(m[1]!) } : { xid: BigInt(m[1]!), seq: BigInt(m[2]) };
  if (p.xid > MAX_BIGINT || p.seq > MAX_BIGINT) throw invalid();
  return p;
}

/**
 * A timestamptz as JSON text the way JavaScript's Date#toISOString writes it (UTC, milliseconds,
 * `Z`); both drop the microseconds rather than round them, so the text is what node-pg's Date gave.
 */
const isoTime = (col: RawBuilder<unknown>) => sql`coalesce('"' || to_char(${col} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null')`;

/**
 * One of a stream's own columns as JSON text, as the API has always shown it. Pieces of text
 * joined with `||` rather than json_build_object, which looks up the type of every argument
 * on every row: for pages of 1,000 Base records it doubled Postgres's time per page.
 */
function columnJson(stream: StreamSpec, column: string): RawBuilder<unknown> {
  const ref = sql`t.${sql.ref(column)}`;
  switch (columnType(stream, column)) {
    case 'timestamptz':
      return isoTime(ref);
    case 'text':
      return sql`coalesce(to_json(${ref})::text, 'null')`;
    // jsonb's text is JSON; an integer's and a boolean's text (true/false) are too.
    case 'jsonb':
    case 'integer':
    case 'boolean':
      return sql`coalesce(${ref}::text, 'null')`;
  }
}

/** `{"name":value,...}` from [name, JSON text] pairs, as one SQL text expression. */
function jsonObject(members: Array<[string, RawBuilder<unknown>]>): RawBuilder<unknown> {
  const parts = members.map(([name, value], i) => sql`${sql.lit(`${i === 0 ? '{' : ','}${JSON.stringify(name)}:`)} || ${value}`);
  return sql`(${sql.join(parts, sql` || `)} || '}')`;
}

/** A page as the API's JSON text, and its nextCursor. */
interface PageText {
  json: string;
  next: string | null;
}

/** Whether a page of listJson holds no record (the text starts as readPage writes it). */
export const pageIsEmpty = (json: string): boolean => json.startsWith('{"records":[]');

/** Two requests get the same page exactly when they ask the same question. */
const readAheadKey = (tenantKey: string, stream: StreamName, o: ListOptions) =>
  JSON.stringify([tenantKey, stream, o.limit, o.cursor ?? null, o.updatedSince?.toISOString() ?? null]);

/** One feed row: its position and the record as the API's JSON, built by Postgres. */
interface FeedRow {
  feed_xid: string;
  feed_seq: string;
  json: string;
}

/**
 * Reads synced rows in change order, a feed that never skips a row.
 *
 * Every insert, change or soft delete stamps the row with its transaction's id (change_xid) and a
 * new value of one sequence (change_seq); the feed is ordered by that pair. Sequence values are
 * drawn when a row is written, but transactions commit later and in another order (Base pages
 * commit while the next page already writes), so a row can become visible *behind* rows already
 * served. The reader therefore serves only rows whose transaction id lies below `feed_horizon()`
 * (migrations 2026_12_07_1100 and 2026_12_13_0900): the oldest transaction of this database open
 * at its snapshot, else the snapshot's xmax (another database's open transaction may hold it for
 * up to 100 ms per session before a lookup skips it: later, never unsafe). Every transaction below
 * it has finished, and every transaction still to commit has (or will get) an id at or above it;
 * other databases' transactions cannot write here. So no row can ever appear behind a cursor once
 * it was handed out; rows of transactions still open wait until they commit. A row changed after
 * it was read comes again later with its new content (its position moves to the new transaction).
 *
 * A full page starts reading the next one (feed-read-ahead.ts), so that a consumer following
 * nextCursor finds it ready: an answer from a moment earlier, which skips nothing either.
 */
export class RecordsService {
  private readonly readAhead: FeedReadAhead<PageText> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly streams: StreamCatalog,
    /** false: every page is read when asked for (tests that time visibility exactly) */
    readAhead: ReadAheadOptions | false = { maxPages: 8, maxAgeMs: 1_000 },
  ) {
    this.readAhead = readAhead ? new FeedReadAhead(readAhead) : undefined;
  }

  /** One page as objects (the API's JSON, parsed): for callers inside the process and tests. */
  async list(tenantKey: string, stream: StreamName, opts: ListOptions): Promise<RecordPage> {
    return JSON.parse(await this.listJson(tenantKey, stream, opts)) as RecordPage;
  }

  /**
   * One page as the API's JSON text. Postgres writes each record's JSON (jsonb columns as they are
   * stored), so this process neither parses the payloads nor serializes them again: on a walk of
   * the feed with pages of 1,000 rows, parsing rows, mapping them and JSON.stringify were most of
   * its time per page, and they stall whatever else its event loop runs (the worker's syncs).
   */
  async listJson(tenantKey: string, stream: StreamName, opts: ListOptions): Promise<string> {
    const after = opts.cursor ? decodeCursor(opts.cursor) : START;
    const key = readAheadKey(tenantKey, stream, opts);
    const page = (await this.readAhead?.take(key)) ?? (await this.readPage(tenantKey, stream, opts, after));
    if (page.next && this.readAhead) {
      const next = { ...opts, cursor: page.next };
      this.readAhead.start(readAheadKey(tenantKey, stream, next), () => this.readPage(tenantKey, stream, next, decodeCursor(page.next!)));
    }
    return page.json;
  }

  private async readPage(tenantKey: string, stream: StreamName, opts: ListOptions, after: Position): Promise<PageText> {
    const spec = this.streams.spec(stream);
    // Keys in the order the API has always had them.
    const record = jsonObject([
      ['key', sql`to_json(t.record_key)::text`],
      ['deletedAt', isoTime(sql`t.deleted_at`)],
      ['updatedAt', isoTime(sql`t.updated_at`)],
      [
        'data',
        jsonObject([
          ['first_seen_at', isoTime(sql`t.first_seen_at`)],
          ['raw', sql`t.raw::text`],
          ...spec.columns.map((c): [string, RawBuilder<unknown>] => [c, columnJson(spec, c)]),
        ]),
      ],
    ]);
    // Qualified names: an ORDER BY on a bare name would sort by the text alias of the same name.
    const res = await sql<FeedRow>`
      select t.change_xid::text as feed_xid, t.change_seq::text as feed_seq, ${record} as json
        from ${sql.table(stream)} t
       where t.tenant_key = ${tenantKey}
         and (t.change_xid, t.change_seq) > (${after.xid.toString()}::xid8, ${after.seq.toString()}::bigint)
         and t.change_xid < (select feed_horizon())
         ${opts.updatedSince ? sql`and t.updated_at >= ${opts.updatedSince}` : sql``}
       order by t.change_xid, t.change_seq
       limit ${opts.limit + 1}`.execute(this.db);
    const rows = res.rows.slice(0, opts.limit);
    const last = rows.at(-1);
    const resume = encodeCursor(last ? { xid: BigInt(last.feed_xid), seq: BigInt(last.feed_seq) } : after);
    const next = res.rows.length > opts.limit ? resume : null;
    // Cursors are base64url: nothing in them needs escaping.
    const json = `{"records":[${rows.map((r) => r.json).join(',')}],"nextCursor":${next ? `"${next}"` : 'null'},"resumeCursor":"${resume}"}`;
    return { json, next };
  }
}
