import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import type { StreamName } from './streams.js';
import { newerRead } from './read-seq.js';

/**
 * Certain deletions. A complete listing of a partition (one Base table, the contact directory)
 * shows which stored rows it did not list: candidates, never deleted on that alone. Lark's page
 * tokens behave like offsets, so a record deleted and another added between two pages can hide a
 * live record from a listing that looks complete by its counts (review H2). A candidate is marked
 * deleted only when its absence is certain:
 *
 * - `read`: the phase reads the candidates back directly (Base records/batch_get), and only ids
 *   Lark names as absent are marked (`applyConfirmation`);
 * - `relist`: a candidate missed by two consecutive complete listings is marked (no API can read
 *   it back, or the listing is small).
 *
 * Candidates live in sync_delete_candidates, per (tenant, stream, partition), across runs.
 */
export type ConfirmBy = 'read' | 'relist';

export interface SweepRequest {
  stream: StreamName;
  partition: string;
  confirmBy: ConfirmBy;
}

export interface Confirmation {
  stream: StreamName;
  partition: string;
  /** keys the direct read named as absent: marked deleted */
  deleted: string[];
  /** keys the direct read found (or could not confirm gone): kept */
  alive: string[];
}

export interface DeletionCounts {
  deleted: number;
  alive: number;
  /** candidates a `read` sweep stored for the phase to confirm */
  pending: number;
  /** the listing was empty while rows exist: nothing was judged */
  untrusted: boolean;
}

const NONE: DeletionCounts = { deleted: 0, alive: 0, pending: 0, untrusted: false };

/**
 * Stamps a row as changed by this transaction (the records feed serves it again), by the read that
 * judged it (`readSeq`, see read-seq.ts).
 */
const changed = (readSeq: string | undefined) =>
  sql`updated_at = now(), change_seq = nextval('sync_change_seq'), change_xid = pg_current_xact_id(), read_seq = greatest(read_seq, ${readSeq ?? null}::bigint)`;

/** A row written by a read newer than the one that judged it deleted is kept: that read saw it. */
const judgedBy = (readSeq: string | undefined) => newerRead(sql.table('t'), sql`${readSeq ?? null}::bigint`);

/** Keys this run recorded for a partition, as a relation of `k`. */
const seenKeys = (runId: string, stream: string, partition: string) => sql`
  select k from sync_seen_pages s cross join lateral unnest(s.keys) as k
   where s.run_id = ${runId}::bigint and s.stream = ${stream} and s.partition = ${partition}`;

/**
 * After a complete listing of a partition, in the page's transaction (the run's lease already
 * claimed): finds the rows the listing missed and judges them by `confirmBy`. The run's seen keys
 * for the partition are dropped afterwards. An empty listing of a partition that has rows is not
 * trusted (Lark answers permission-filtered listings, e.g. Base advanced permissions, with
 * nothing): it judges nothing.
 */
export async function sweepUnseen(
  trx: Transaction<Database>,
  tenantKey: string,
  runId: string,
  req: SweepRequest,
  /** the read of the page that completed the listing */
  readSeq?: string,
): Promise<DeletionCounts> {
  const { stream, partition } = req;
  const table = sql.table(stream);
  const any = await sql<{ any: boolean }>`
    select exists (
      select 1 from sync_seen_pages
       where run_id = ${runId}::bigint and stream = ${stream} and partition = ${partition} and cardinality(keys) > 0) as any`.execute(trx);
  let counts = NONE;
  if (any.rows[0]?.any) {
    // Both sides can be large and freshly written (no statistics yet), where the planner picks a
    // nested loop that rescans the seen keys per row: quadratic. A hash anti-join is linear, and
    // with a million keys it stays in memory rather than spilling in batches.
    // JIT off: the unnest of the seen keys can only be a nested loop, so disabling nested loops
    // adds Postgres's "disable cost" (1e10) to every plan here, far past the JIT thresholds; a
    // server with JIT then compiled and inlined each of these statements, 0.6 to 1.1 s apiece
    // for a partition of 30 rows (auto_explain, PostgreSQL 15 with LLVM).
    await sql`set local enable_nestloop = off`.execute(trx);
    await sql`set local jit = off`.execute(trx);
    await sql`set local work_mem = '64MB'`.execute(trx);
    let deleted = 0;
    let alive = 0;
    const prior = sql`sync_delete_candidates c where c.tenant_key = ${tenantKey} and c.stream = ${stream} and c.partition = ${partition}`;
    if (req.confirmBy === 'relist') {
      // Earlier candidates this listing showed again were alive after all.
      const seenAgain = await sql<{ n: number }>`
        select count(*)::int as n from ${prior}
           and exists (select 1 from (${seenKeys(runId, stream, partition)}) s where s.k = c.record_key)`.execute(trx);
      alive = seenAgain.rows[0]?.n ?? 0;
      // Missed by an earlier complete listing and again by this one: gone.
      const marked = await sql`
        update ${table} t set deleted_at = now(), ${changed(readSeq)}
         where t.tenant_key = ${tenantKey} and t.partition = ${partition} and t.deleted_at is null and ${judgedBy(readSeq)}
           and t.record_key in (select c.record_key from ${prior} except ${seenKeys(runId, stream, partition)})`.execute(trx);
      deleted = Number(marked.numAffectedRows ?? 0n);
    }
    await sql`delete from ${prior}`.execute(trx);
    const stored = await sql`
      insert into sync_delete_candidates (tenant_key, stream, partition, record_key, run_id)
      select ${tenantKey}, ${stream}, ${partition}, t.record_key, ${runId}::bigint
        from ${table} t
       where t.tenant_key = ${tenantKey} and t.partition = ${partition} and t.deleted_at is null
         and not exists (select 1 from (${seenKeys(runId, stream, partition)}) s where s.k = t.record_key)`.execute(trx);
    await sql`set local enable_nestloop to default`.execute(trx);
    await sql`set local jit to default`.execute(trx);
    await sql`set local work_mem to default`.execute(trx);
    const pending = Number(stored.numAffectedRows ?? 0n);
    counts = { deleted, alive, pending: req.confirmBy === 'read' ? pending : 0, untrusted: false };
  } else {
    const live = await sql<{ n: number }>`
      select count(*)::int as n from ${table} where tenant_key = ${tenantKey} and partition = ${partition} and deleted_at is null`.execute(trx);
    if ((live.rows[0]?.n ?? 0) > 0) counts = { ...NONE, untrusted: true };
  }
  await sql`delete from sync_seen_pages where run_id = ${runId}::bigint and stream = ${stream} and partition = ${partition}`.execute(trx);
  return counts;
}

/**
 * The phase's direct read of some candidates: the absent ones are marked deleted, the rest kept.
 * Only candidates this run stored are touched, so a read of stale candidates changes nothing.
 */
export async function applyConfirmation(
  trx: Transaction<Database>,
  tenantKey: string,
  runId: string,
  c: Confirmation,
  /** the read that confirmed the deletions */
  readSeq?: string,
): Promise<DeletionCounts> {
  let deleted = 0;
  if (c.deleted.length > 0) {
    const marked = await sql`
      update ${sql.table(c.stream)} t set deleted_at = now(), ${changed(readSeq)}
       where t.tenant_key = ${tenantKey} and t.partition = ${c.partition} and t.deleted_at is null and ${judgedBy(readSeq)}
         and t.record_key = any(${c.deleted}::text[])
         and exists (
           select 1 from sync_delete_candidates d
            where d.tenant_key = ${tenantKey} and d.stream = ${c.stream} and d.partition = ${c.partition}
              and d.record_key = t.record_key and d.run_id = ${runId}::bigint)`.execute(trx);
    deleted = Number(marked.numAffectedRows ?? 0n);
  }
  const keys = [...c.deleted, ...c.alive];
  if (keys.length > 0) {
    await sql`
      delete from sync_delete_candidates
       where tenant_key = ${tenantKey} and stream = ${c.stream} and partition = ${c.partition}
         and record_key = any(${keys}::text[]) and run_id = ${runId}::bigint`.execute(trx);
  }
  return { deleted, alive: c.alive.length, pending: 0, untrusted: false };
}
