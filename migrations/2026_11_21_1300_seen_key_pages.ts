import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * The keys a run has seen (for its deletion sweep) are kept as one array per page instead of one
 * row per key: a million-record pass wrote a million rows plus their primary-key index (about
 * 300 MB for one run) and deleted them again at the end; as arrays it is a few MB in TOAST.
 * Duplicates across pages are allowed; readers count distinct keys.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sync_seen_pages')
    .addColumn('run_id', 'bigint', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('partition', 'text', (c) => c.notNull())
    .addColumn('keys', sql`text[]`, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sync_seen_pages_run_idx').on('sync_seen_pages').columns(['run_id', 'stream', 'partition']).execute();
  // A run in progress during the upgrade keeps what it has seen.
  await sql`
    insert into sync_seen_pages (run_id, stream, partition, keys)
    select run_id, stream, partition, array_agg(record_key) from sync_seen_keys group by run_id, stream, partition`.execute(db);
  await db.schema.dropTable('sync_seen_keys').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sync_seen_keys')
    .addColumn('run_id', 'bigint', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('partition', 'text', (c) => c.notNull())
    .addColumn('record_key', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('sync_seen_keys_pk', ['run_id', 'stream', 'partition', 'record_key'])
    .execute();
  await sql`
    insert into sync_seen_keys (run_id, stream, partition, record_key)
    select distinct run_id, stream, partition, unnest(keys) from sync_seen_pages`.execute(db);
  await db.schema.dropTable('sync_seen_pages').execute();
}
