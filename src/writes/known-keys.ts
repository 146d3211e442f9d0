import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { cellText, writtenKey } from './upsert-keys.js';

/**
 * What larksync already holds of one table's upsert key field: every record it knows (record id
 * -> the field's text, undefined when the record has none), or 'unusable'. Two sources, read in
 * one snapshot so the read-back (which moves a call's rows into base_records and marks the call
 * done in one transaction) is seen on exactly one side:
 * - the table's live rows in base_records (kept by syncs, change events and the writes' read-back);
 * - the write calls Lark answered whose rows are not read back yet ('written'), in the order they
 *   were sent: what they created, the key values they wrote, the records they deleted.
 *
 * The caller uses it in place of reading the field from Lark only when it holds exactly as many
 * records as Lark lists (the table's `total`) and agrees with a page of Lark's own listing: a row
 * that base_records lacks (a table never synced, a view, a read-back that failed) or still holds
 * after Lark deleted it shows as a count that differs. What a count cannot show is a record
 * created by someone else while another was deleted since larksync last read them (a table not
 * kept by change events); the upsert of such a key would create a second record, as it would for
 * a record created during a job that read the field from Lark.
 */
export type KnownKeys = Map<string, string | undefined> | 'unusable';

export async function knownKeys(
  db: Kysely<Database>,
  q: { tenantKey: string; appId: string; appToken: string; tableId: string; field: string },
): Promise<KnownKeys> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      // The whole table's keys (100,000 rows for a large one) come back as two JSON arrays in one
      // row: the record ids, and the field's values in the same order (the aggregates of one scan
      // see its rows in one order). Read as rows, the driver's per-row parsing was most of the
      // time an upsert job waited before its first call; the scan itself is the floor (every
      // record's row is read from the heap).
      const res = await sql<{ ids: string[] | null; vals: unknown[] | null }>`
        select json_agg(record_id) as ids, json_agg(fields -> ${q.field}) as vals
          from base_records
         where tenant_key = ${q.tenantKey} and partition = ${`${q.appToken}:${q.tableId}`} and deleted_at is null`.execute(trx);
      const ids = res.rows[0]?.ids ?? [];
      const vals = res.rows[0]?.vals ?? [];
      const out = new Map<string, string | undefined>();
      for (let i = 0; i < ids.length; i += 1) out.set(ids[i]!, cellText(vals[i]));
      const calls = await sql<{ op: 'create' | 'update' | 'delete'; body: { records?: unknown[] }; ids: Array<string | null> }>`
        select b.op, b.body, array_agg(r.record_id order by r.write_id, r.idx) as ids
          from base_write_batches b join base_write_records r on r.batch_id = b.id
         where b.app_id = ${q.appId} and b.app_token = ${q.appToken} and b.table_id = ${q.tableId} and b.status = 'written'
         group by b.id order by b.id`.execute(trx);
      for (const c of calls.rows) {
        const sent = c.body.records ?? [];
        for (const [i, id] of c.ids.entries()) {
          if (!id) return 'unusable';
          if (c.op === 'delete') {
            out.delete(id);
            continue;
          }
          const key = writtenKey((sent[i] as { fields?: Record<string, unknown> } | undefined)?.fields, q.field);
          // A value with no text to match on: the field cannot serve as a key from here.
          if (key === null) return 'unusable';
          if (key !== undefined) out.set(id, key);
          else if (!out.has(id)) out.set(id, undefined);
        }
      }
      return out;
    });
}
