import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import type { SinkDocRow, SinkDocStatus, SinkDocUpdate, SinkRow } from './sinks.table.js';
import type { FeedPosition } from './docs-source.js';

/** The context a sink's API key is sealed under: a sealed key copied to another row does not open. */
export const sinkKeyContext = (tenantKey: string, name: string) => `sink-api-key:${tenantKey}:${name}`;

export async function getSink(db: Kysely<Database>, tenantKey: string, name: string): Promise<SinkRow | undefined> {
  return db.selectFrom('sinks').selectAll().where('tenant_key', '=', tenantKey).where('name', '=', name).executeTakeFirst();
}

/** Whether the tenant's docs connector names this sink in `config.sinks`. */
export async function namedByDocs(db: Kysely<Database>, tenantKey: string, name: string): Promise<boolean> {
  const res = await sql<{ ok: boolean }>`
    select true as ok from connectors
     where tenant_key = ${tenantKey} and module = 'docs'
       and jsonb_typeof(config -> 'sinks') = 'array'
       and (config -> 'sinks') @> jsonb_build_array(${name}::text)`.execute(db);
  return res.rows.length > 0;
}

export interface DocCounts {
  total: number;
  pending: number;
  delivering: number;
  done: number;
  failed: number;
  deleted: number;
}

export async function countDocs(db: Kysely<Database>, tenantKey: string, name: string): Promise<DocCounts> {
  const res = await sql<{ status: SinkDocStatus; n: number }>`
    select status, count(*)::int as n from sink_documents
     where tenant_key = ${tenantKey} and sink_name = ${name} group by status`.execute(db);
  const counts: DocCounts = { total: 0, pending: 0, delivering: 0, done: 0, failed: 0, deleted: 0 };
  for (const r of res.rows) {
    counts[r.status] = r.n;
    counts.total += r.n;
  }
  return counts;
}

/**
 * Marks the documents of one feed page as changed and moves the sink's cursor past them, in one
 * transaction: a crash leaves both or neither. False when the sink changed meanwhile (deleted,
 * another generation, cursor moved by another job): nothing is written then.
 */
export async function intakePage(db: Kysely<Database>, sink: { tenantKey: string; name: string; generation: number }, from: FeedPosition, to: FeedPosition, keys: string[]): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const moved = await sql`
      update sinks set cursor_xid = ${to.xid}::xid8, cursor_seq = ${to.seq}::bigint, updated_at = now()
       where tenant_key = ${sink.tenantKey} and name = ${sink.name} and generation = ${sink.generation}
         and cursor_xid = ${from.xid}::xid8 and cursor_seq = ${from.seq}::bigint`.execute(trx);
    if (Number(moved.numAffectedRows ?? 0n) !== 1) return false;
    await markChanged(trx, sink, keys);
    return true;
  });
}

/** A change to deliver: the wanted version goes up; an idle document is queued at once. */
export async function markChanged(trx: Transaction<Database> | Kysely<Database>, sink: { tenantKey: string; name: string; generation: number }, keys: string[]): Promise<void> {
  // Each key once: one statement may not update a row twice.
  const unique = [...new Set(keys)];
  if (unique.length === 0) return;
  await sql`
    insert into sink_documents (tenant_key, sink_name, doc_token, generation, status)
    select ${sink.tenantKey}, ${sink.name}, k, ${sink.generation}, 'pending' from unnest(${unique}::text[]) k
    on conflict (tenant_key, sink_name, doc_token) do update set
      want_version = sink_documents.want_version + 1,
      restarts = 0,
      status = case when sink_documents.step = 'idle' then 'pending' else sink_documents.status end,
      next_check_at = case when sink_documents.step = 'idle' then null else sink_documents.next_check_at end,
      updated_at = now()
    where sink_documents.generation = ${sink.generation}`.execute(trx);
}

/** Documents with something to do now, those waiting longest first. */
export async function dueDocs(db: Kysely<Database>, tenantKey: string, name: string, generation: number, limit: number): Promise<SinkDocRow[]> {
  const res = await sql<SinkDocRow>`
    select * from sink_documents
     where tenant_key = ${tenantKey} and sink_name = ${name} and generation = ${generation}
       and (want_version > done_version or step <> 'idle' or cardinality(obsolete_ids) > 0)
       and (next_check_at is null or next_check_at <= now())
     order by next_check_at nulls first, doc_token
     limit ${limit}`.execute(db);
  return res.rows;
}

/** When the next document waiting for a parse or a retry is due; undefined when none waits. */
export async function nextDue(db: Kysely<Database>, tenantKey: string, name: string, generation: number): Promise<Date | undefined> {
  const res = await sql<{ at: Date | null }>`
    select min(coalesce(next_check_at, now())) as at from sink_documents
     where tenant_key = ${tenantKey} and sink_name = ${name} and generation = ${generation}
       and (want_version > done_version or step <> 'idle' or cardinality(obsolete_ids) > 0)`.execute(db);
  return res.rows[0]?.at ?? undefined;
}

/** Writes a document's state; false when the sink was re-pointed meanwhile (another generation). */
export async function saveDoc(db: Kysely<Database>, key: { tenantKey: string; name: string; token: string; generation: number }, patch: SinkDocUpdate): Promise<boolean> {
  const res = await db
    .updateTable('sink_documents')
    .set({ ...patch, updated_at: new Date() })
    .where('tenant_key', '=', key.tenantKey)
    .where('sink_name', '=', key.name)
    .where('doc_token', '=', key.token)
    .where('generation', '=', key.generation)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function allDocs(db: Kysely<Database>, tenantKey: string, name: string, generation: number): Promise<SinkDocRow[]> {
  return db.selectFrom('sink_documents').selectAll().where('tenant_key', '=', tenantKey).where('sink_name', '=', name).where('generation', '=', generation).execute();
}

/**
 * Sinks whose delivery has work: the feed moved past their cursor, or documents are due; none in
 * backoff. A change above the feed's snapshot horizon (an older transaction still open) counts:
 * the delivery waits for the horizon itself (intake's `behind_horizon`), while a sink skipped here
 * would wait for the minute cron.
 */
export async function sinksDue(db: Kysely<Database>): Promise<Array<{ tenant_key: string; name: string }>> {
  const res = await sql<{ tenant_key: string; name: string }>`
    select s.tenant_key, s.name from sinks s
     where s.enabled and (s.next_attempt_at is null or s.next_attempt_at <= now())
       and exists (select 1 from connectors c
                    where c.tenant_key = s.tenant_key and c.module = 'docs'
                      and jsonb_typeof(c.config -> 'sinks') = 'array'
                      and (c.config -> 'sinks') @> jsonb_build_array(s.name))
       and (s.rebuild_requested
         or exists (select 1 from docs_content d
                     where d.tenant_key = s.tenant_key and (d.change_xid, d.change_seq) > (s.cursor_xid, s.cursor_seq))
         or exists (select 1 from sink_documents w
                     where w.tenant_key = s.tenant_key and w.sink_name = s.name and w.generation = s.generation
                       and (w.want_version > w.done_version or w.step <> 'idle' or cardinality(w.obsolete_ids) > 0)
                       and (w.next_check_at is null or w.next_check_at <= now())))`.execute(db);
  return res.rows;
}
