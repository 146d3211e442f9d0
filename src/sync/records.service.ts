import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import { STREAMS, type StreamName } from './streams.js';

export interface RecordView {
  key: string;
  deletedAt: string | null;
  updatedAt: string;
  data: Record<string, unknown>;
}

export interface RecordPage {
  records: RecordView[];
  nextCursor: string | null;
}

const encodeCursor = (seq: string) => Buffer.from(`v1:${seq}`).toString('base64url');
function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^v1:(\d{1,19})$/.exec(text);
  if (!m?.[1]) throw new AppError(400, 'invalid_cursor', 'cursor is not one this API returned; start without it');
  return m[1];
}

/**
 * Reads synced rows in change order. Every insert, change or soft delete takes a new value from
 * one sequence, so a cursor never skips a row while syncs write: a row changed after it was read
 * comes again later, with its new content.
 */
export class RecordsService {
  constructor(private readonly db: Kysely<Database>) {}

  async list(tenantKey: string, stream: StreamName, opts: { limit: number; cursor?: string; updatedSince?: Date }): Promise<RecordPage> {
    const after = opts.cursor ? decodeCursor(opts.cursor) : '0';
    const specific = STREAMS[stream].columns as readonly string[];
    const res = await sql<Record<string, unknown> & { record_key: string; change_seq: string; deleted_at: Date | null; updated_at: Date }>`
      select record_key, change_seq::text as change_seq, deleted_at, updated_at, first_seen_at, raw,
             ${sql.join(specific.map((c) => sql.ref(c)))}
        from ${sql.table(stream)}
       where tenant_key = ${tenantKey}
         and change_seq > ${after}::bigint
         ${opts.updatedSince ? sql`and updated_at >= ${opts.updatedSince}` : sql``}
       order by change_seq
       limit ${opts.limit + 1}`.execute(this.db);
    const page = res.rows.slice(0, opts.limit);
    return {
      records: page.map((r) => {
        const { record_key, change_seq: _seq, deleted_at, updated_at, ...rest } = r;
        return {
          key: record_key,
          deletedAt: deleted_at ? deleted_at.toISOString() : null,
          updatedAt: updated_at.toISOString(),
          data: Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
        };
      }),
      nextCursor: res.rows.length > opts.limit ? encodeCursor(page.at(-1)?.change_seq ?? after) : null,
    };
  }
}
