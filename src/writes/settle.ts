import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import { emitWebhookEvent } from '../webhooks/emit.js';
import { writeFinished } from './write-finished.js';
import type { BaseWriteRow } from './writes.table.js';

/**
 * Ends the writes that have nothing left open: succeeded, partial, failed or cancelled by their
 * records. A record is open while it is pending or batched, and while the call that carried it is
 * planned. A write ends once Lark holds (or refused) each record: the read-back of its rows into
 * base_records ('written' calls) follows within seconds and is shown as `readBackPending`, so the
 * write's own pace is that of Lark's write calls, not of batch_get's 20/s.
 *
 * The writes are locked first (in id order), so two transactions settling the same write one
 * after the other each count what the other committed: call it after the transaction's own
 * changes.
 */
export async function settleWrites(db: Transaction<Database>, writeIds: string[]): Promise<void> {
  if (writeIds.length === 0) return;
  const locked = await sql<{ id: string }>`select id::text as id from base_writes where id = any(${writeIds}::bigint[]) and status in ('queued', 'running') order by id for update`.execute(db);
  // Writes that ended already (a read-back's commit) have nothing to count.
  if (locked.rows.length === 0) return;
  // A write with a record still pending cannot end: one index probe (base_write_records_pending_idx)
  // spares counting its 10,000 records at every call it answers. Checked after the lock, as the
  // counting is, so it sees what a transaction that settled the same write before committed.
  const done = await sql<BaseWriteRow & { total: number; ok: number; failed: number }>`
    with candidates as (
      select c.id from unnest(${locked.rows.map((r) => r.id)}::bigint[]) as c(id)
       where not exists (select 1 from base_write_records p where p.write_id = c.id and p.state = 'pending')
    )
    update base_writes w set finished_at = now(), status = case
        when c.ok = c.total then 'succeeded'
        when c.ok = 0 and c.failed = 0 then 'cancelled'
        when c.ok = 0 then 'failed'
        else 'partial' end
      from (select r.write_id, count(*) as total, count(*) filter (where r.state = 'ok') as ok, count(*) filter (where r.state = 'failed') as failed,
                   count(*) filter (where r.state in ('pending', 'batched') or b.status = 'planned') as open
              from base_write_records r left join base_write_batches b on b.id = r.batch_id
             where r.write_id in (select id from candidates) group by r.write_id) c
     where w.id = c.write_id and c.open = 0 and w.status in ('queued', 'running')
    returning w.*, c.total::int as total, c.ok::int as ok, c.failed::int as failed`.execute(db);
  // Told in the transaction that ended the write (an outbox row; nothing when no webhook wants it).
  for (const w of done.rows) await emitWebhookEvent(db, { type: 'write.finished', tenantKey: w.tenant_key, data: { write: writeFinished(w) } });
}
