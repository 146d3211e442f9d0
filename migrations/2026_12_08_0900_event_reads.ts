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
  'docs_nodes',
  'docs_content',
];

/**
 * "Newer read wins" (change events, issue 14). Every read of Lark that ends in rows (a sync page,
 * an event's re-read) draws a value of `sync_read_seq` before its HTTP call; a row keeps the value
 * of the read that wrote it, and a write (or a deletion) from an older read leaves it alone. So a
 * sync page read before an event's re-read, committed after it, cannot put the older state back.
 * NULL = written before this migration (older than every read).
 *
 * `event_marks`: per object, the newest Lark time (operate_time, revision, push time) of a change
 * event applied to it; an event carrying an older one is a no-op without an upstream call.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create sequence if not exists sync_read_seq`.execute(db);
  for (const t of STREAM_TABLES) {
    await sql`alter table ${sql.table(t)} add column if not exists read_seq bigint`.execute(db);
  }
  await db.schema
    .createTable('event_marks')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('object_key', 'text', (c) => c.notNull())
    .addColumn('mark', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('event_marks_pk', ['tenant_key', 'object_key'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('event_marks').ifExists().execute();
  for (const t of STREAM_TABLES) await sql`alter table ${sql.table(t)} drop column if exists read_seq`.execute(db);
  await sql`drop sequence if exists sync_read_seq`.execute(db);
}
