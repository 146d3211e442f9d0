import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import type { StreamCatalog, StreamName } from './streams.js';

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

type FeedRow = Record<string, unknown> & {
  record_key: string;
  feed_xid: string;
  feed_seq: string;
  deleted_at: Date | null;
  updated_at: Date;
};

/**
 * Reads synced rows in change order, a feed that never skips a row.
 *
 * Every insert, change or soft delete stamps the row with its transaction's id (change_xid) and a
 * new value of one sequence (change_seq); the feed is ordered by that pair. Sequence values are
 * drawn when a row is written, but transactions commit later and in another order (Base pages
 * commit while the next page already writes), so a row can become visible *behind* rows already
 * served. The reader therefore serves only rows whose transaction id lies below `feed_horizon()`
 * (migration 2026_12_07_1100): the oldest transaction of this database open at its snapshot, else
 * the snapshot's xmax. Every transaction below it has finished, and every transaction still to
 * commit has (or will get) an id at or above it; other databases' transactions cannot write here. So no row can ever appear behind a cursor once it was
 * handed out; rows of transactions still open wait until they commit. A row changed after it was
 * read comes again later with its new content (its position moves to the new transaction).
 */
export class RecordsService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly streams: StreamCatalog,
  ) {}

  async list(tenantKey: string, stream: StreamName, opts: { limit: number; cursor?: string; updatedSince?: Date }): Promise<RecordPage> {
    const after = opts.cursor ? decodeCursor(opts.cursor) : START;
    const specific = this.streams.spec(stream).columns;
    // Qualified names: an ORDER BY on a bare name would sort by the text alias of the same name.
    const res = await sql<FeedRow>`
      select t.record_key, t.change_xid::text as feed_xid, t.change_seq::text as feed_seq, t.deleted_at, t.updated_at,
             t.first_seen_at, t.raw, ${sql.join(specific.map((c) => sql`t.${sql.ref(c)}`))}
        from ${sql.table(stream)} t
       where t.tenant_key = ${tenantKey}
         and (t.change_xid, t.change_seq) > (${after.xid.toString()}::xid8, ${after.seq.toString()}::bigint)
         and t.change_xid < (select feed_horizon())
         ${opts.updatedSince ? sql`and t.updated_at >= ${opts.updatedSince}` : sql``}
       order by t.change_xid, t.change_seq
       limit ${opts.limit + 1}`.execute(this.db);
    const page = res.rows.slice(0, opts.limit);
    const last = page.at(-1);
    const resume = last ? { xid: BigInt(last.feed_xid), seq: BigInt(last.feed_seq) } : after;
    return {
      records: page.map((r) => {
        const { record_key, feed_xid: _xid, feed_seq: _seq, deleted_at, updated_at, ...rest } = r;
        return {
          key: record_key,
          deletedAt: deleted_at ? deleted_at.toISOString() : null,
          updatedAt: updated_at.toISOString(),
          data: Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
        };
      }),
      nextCursor: res.rows.length > opts.limit ? encodeCursor(resume) : null,
      resumeCursor: encodeCursor(resume),
    };
  }
}
