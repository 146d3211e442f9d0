import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

const STREAM_TABLES = [
  'approval_instances',
  'approval_instance_fields',
  'approval_tasks',
  'approval_timeline',
  'base_records',
  'base_fields',
  'attendance_flows',
  'contact_departments',
  'contact_users',
];

/**
 * The records feed orders rows by (change_xid, change_seq): the writing transaction's id, then the
 * sequence value it drew. A reader serves only rows whose transaction id lies below its snapshot's
 * xmin, where every transaction has finished, so no row can later become visible behind a cursor
 * it was given (a sequence value alone is drawn at write time, and commits land in another order).
 *
 * Existing rows get transaction id 0: they sort before every later write, in their old order, and
 * a cursor handed out before this migration (a bare change_seq) reads on from the same place.
 */
export async function up(db: Kysely<any>): Promise<void> {
  for (const t of STREAM_TABLES) {
    // A constant default first (no table rewrite), then the per-transaction default for new rows.
    await sql`alter table ${sql.table(t)} add column change_xid xid8 not null default '0'`.execute(db);
    await sql`alter table ${sql.table(t)} alter column change_xid set default pg_current_xact_id()`.execute(db);
    await sql`create index ${sql.id(`${t}_feed_idx`)} on ${sql.table(t)} (tenant_key, change_xid, change_seq)`.execute(db);
    await sql`drop index ${sql.id(`${t}_change_idx`)}`.execute(db);
  }

  // A run that finished with some items failing (a Base table it may not read) is 'partial'.
  await sql`alter table sync_runs drop constraint sync_runs_status_check`.execute(db);
  await sql`alter table sync_runs add constraint sync_runs_status_check
              check (status in ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled'))`.execute(db);
  await db.schema
    .alterTable('sync_runs')
    .addColumn('item_errors', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('deletions_confirmed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('deletion_candidates_alive', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('values_sanitized', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();

  // Rows a complete listing did not show: deleted only once a direct read confirms it, or once a
  // second complete listing misses them too. Kept per stream partition across runs.
  await db.schema
    .createTable('sync_delete_candidates')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('partition', 'text', (c) => c.notNull())
    .addColumn('record_key', 'text', (c) => c.notNull())
    .addColumn('run_id', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('sync_delete_candidates_pk', ['tenant_key', 'stream', 'partition', 'record_key'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sync_delete_candidates').execute();
  await db.schema
    .alterTable('sync_runs')
    .dropColumn('item_errors')
    .dropColumn('deletions_confirmed')
    .dropColumn('deletion_candidates_alive')
    .dropColumn('values_sanitized')
    .execute();
  await sql`update sync_runs set status = 'succeeded' where status = 'partial'`.execute(db);
  await sql`alter table sync_runs drop constraint sync_runs_status_check`.execute(db);
  await sql`alter table sync_runs add constraint sync_runs_status_check
              check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled'))`.execute(db);
  for (const t of STREAM_TABLES) {
    await sql`create index ${sql.id(`${t}_change_idx`)} on ${sql.table(t)} (tenant_key, change_seq)`.execute(db);
    await sql`drop index ${sql.id(`${t}_feed_idx`)}`.execute(db);
    await sql`alter table ${sql.table(t)} drop column change_xid`.execute(db);
  }
}
