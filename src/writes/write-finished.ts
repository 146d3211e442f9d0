import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { BaseWriteRow } from './writes.table.js';

/** A finished write as the `write.finished` webhook tells it (README "Webhooks"). */
export function writeFinished(w: BaseWriteRow & { total: number; ok: number; failed: number }) {
  return {
    id: w.id,
    status: w.status,
    op: w.op,
    table: { appToken: w.app_token, tableId: w.table_id },
    identity: w.identity_user ? { user: w.identity_user } : null,
    counts: { total: w.total, ok: w.ok, failed: w.failed, cancelled: Math.max(0, w.total - w.ok - w.failed) },
    error: w.error_class ? { class: w.error_class, message: w.error_message ?? '' } : null,
    createdAt: w.created_at.toISOString(),
    finishedAt: w.finished_at ? w.finished_at.toISOString() : null,
  };
}

/** The same, read from the database (in the transaction that finished it). */
export async function readWriteFinished(db: Kysely<Database>, id: string): Promise<ReturnType<typeof writeFinished>> {
  const res = await sql<BaseWriteRow & { total: number; ok: number; failed: number }>`
    select w.*, count(r.idx)::int as total, count(r.idx) filter (where r.state = 'ok')::int as ok,
           count(r.idx) filter (where r.state = 'failed')::int as failed
      from base_writes w left join base_write_records r on r.write_id = w.id
     where w.id = ${id}::bigint group by w.id`.execute(db);
  return writeFinished(res.rows[0]!);
}
