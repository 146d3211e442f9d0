import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';

/**
 * The number of a read of Lark, drawn when the read STARTS, before its HTTP call: a sync page's
 * fetch or a change event's re-read. Rows remember the number of the read that wrote them, and a
 * write or deletion from an older read leaves a row written by a newer one alone (write-page.ts
 * `newerRead`). So whatever order two overlapping reads commit in, the row ends up as the later
 * read saw it: "newer read wins". Text, as Postgres bigints are.
 */
export async function nextReadSeq(db: Kysely<Database> | Transaction<Database>): Promise<string> {
  const res = await sql<{ s: string }>`select nextval('sync_read_seq')::text as s`.execute(db);
  return res.rows[0]!.s;
}

/**
 * The select-list items `s` (a read's number, as nextReadSeq) and `at` (when it started, by the
 * database's clock, as event receipt times are, to the millisecond: a change event received
 * before then is reflected in this read), for statements that draw a read with other work.
 */
export const READ_START = sql`nextval('sync_read_seq')::text as s, date_trunc('milliseconds', clock_timestamp()) as at`;

/** A read's number and when it started (READ_START). */
export async function nextReadSeqAt(db: Kysely<Database> | Transaction<Database>): Promise<{ seq: string; at: Date }> {
  const res = await sql<{ s: string; at: Date }>`select ${READ_START}`.execute(db);
  return { seq: res.rows[0]!.s, at: res.rows[0]!.at };
}

/**
 * Whether a read numbered `incoming` may change a stored row of `table`: it is not older than the
 * read that wrote the row. An unnumbered read (null) and an unnumbered row (written before reads
 * were numbered) always may.
 */
export function newerRead(table: RawBuilder<unknown> | ReturnType<typeof sql.table>, incoming: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`(${incoming} is null or ${table}.read_seq is null or ${table}.read_seq <= ${incoming})`;
}
