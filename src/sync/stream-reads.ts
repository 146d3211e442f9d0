import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { StreamName } from './streams.js';

/**
 * The little a phase may read from the database: what the run has stored so far, never anything
 * else (phases never write; the engine commits their pages). Each call is bound to one tenant and
 * run, so a connector cannot reach another tenant's rows.
 */
export interface StreamReads {
  /** Whether the partition holds rows not marked deleted. */
  hasLiveRows(stream: StreamName, partition: string): Promise<boolean>;
  /** Distinct keys of the partition this run has stored (for completeness checks). */
  countSeen(stream: StreamName, partition: string): Promise<number>;
  /** Live rows of the stream after `afterKey` in key order: `{ key, value }` with `value` one column. */
  keysAfter(stream: StreamName, afterKey: string | null, column: string, limit: number): Promise<Array<{ key: string; value: string | null }>>;
  /** Deletion candidates this run stored for the partition, after `afterKey` in key order. */
  deleteCandidates(stream: StreamName, partition: string, afterKey: string | null, limit: number): Promise<string[]>;
}

export function streamReads(db: Kysely<Database>, tenantKey: string, runId: string): StreamReads {
  return {
    async hasLiveRows(stream, partition) {
      const res = await sql<{ any: boolean }>`
        select exists (
          select 1 from ${sql.table(stream)}
           where tenant_key = ${tenantKey} and partition = ${partition} and deleted_at is null) as any`.execute(db);
      return res.rows[0]?.any ?? true;
    },
    async countSeen(stream, partition) {
      return db.transaction().execute(async (trx) => {
        // A million keys sort in memory instead of spilling to disk in work_mem's default 4 MB.
        await sql`set local work_mem = '64MB'`.execute(trx);
        // Counted on 64-bit hashes of the keys, several times cheaper for a million keys; a
        // collision can only make the count smaller, which callers treat as "not everything was
        // seen" (the safe side).
        const res = await sql<{ n: number }>`
          select count(distinct hashtextextended(k, 0))::int as n
            from sync_seen_pages s cross join lateral unnest(s.keys) as k
           where s.run_id = ${runId}::bigint and s.stream = ${stream} and s.partition = ${partition}`.execute(trx);
        return res.rows[0]?.n ?? 0;
      });
    },
    async keysAfter(stream, afterKey, column, limit) {
      const res = await sql<{ key: string; value: string | null }>`
        select record_key as key, ${sql.ref(column)}::text as value from ${sql.table(stream)}
         where tenant_key = ${tenantKey} and deleted_at is null and record_key > ${afterKey ?? ''}
         order by record_key limit ${limit}`.execute(db);
      return res.rows;
    },
    async deleteCandidates(stream, partition, afterKey, limit) {
      const res = await sql<{ record_key: string }>`
        select record_key from sync_delete_candidates
         where tenant_key = ${tenantKey} and stream = ${stream} and partition = ${partition} and run_id = ${runId}::bigint
           and record_key > ${afterKey ?? ''}
         order by record_key limit ${limit}`.execute(db);
      return res.rows.map((r) => r.record_key);
    },
  };
}
