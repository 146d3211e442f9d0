import { sql, type QueryExecutorProvider } from 'kysely';

/**
 * `schema.table` -> `rows:md5 of every row version`. A row version is its physical position and
 * the transaction that wrote it (ctid, xmin): any insert, update (even to the same content) or
 * delete changes it, and the hash never reads the row data, so large sealed payloads cost nothing.
 */
export type Fingerprints = Record<string, string>;

/**
 * Every table larksync writes: all base tables of `public` plus graphile-worker's job and queue
 * tables (its `jobs` is a view over `_private_jobs`). Read from the catalog, so a table added by a
 * later migration is watched without editing the tests.
 */
export async function watchedTables(db: QueryExecutorProvider): Promise<string[]> {
  const res = await sql<{ name: string }>`
    select table_schema || '.' || table_name as name from information_schema.tables
     where table_type = 'BASE TABLE'
       and (table_schema = 'public' or (table_schema = 'graphile_worker' and table_name in ('_private_jobs', '_private_job_queues')))
       and table_name <> 'kysely_migration' and table_name <> 'kysely_migration_lock'
     order by 1`.execute(db);
  return res.rows.map((r) => r.name);
}

/** One round trip: a count and a row-version hash per table. */
export async function fingerprint(db: QueryExecutorProvider, tables: string[]): Promise<Fingerprints> {
  if (tables.length === 0) return {};
  const parts = tables.map(
    (t) => sql`select ${t}::text as name,
       count(*)::text || ':' || coalesce(md5(string_agg(x.ctid::text || x.xmin::text, ',' order by x.ctid)), '') as fp
       from ${sql.table(t)} x`,
  );
  const res = await sql<{ name: string; fp: string }>`${sql.join(parts, sql` union all `)}`.execute(db);
  return Object.fromEntries(res.rows.map((r) => [r.name, r.fp]));
}

/** The tables whose fingerprint differs (empty when nothing changed). */
export function changedTables(before: Fingerprints, after: Fingerprints): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((n) => before[n] !== after[n]).sort();
}
