import { sql, type CreateTableBuilder, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * The docs module's stream tables, with the columns every stream table has by now: those of the
 * sync migration, plus change_xid (the change-feed migration: the records feed orders rows by
 * (change_xid, change_seq)) and its feed index instead of the older change_seq index.
 */
function withSyncColumns(t: CreateTableBuilder<string, string>): CreateTableBuilder<string, string> {
  return t
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('record_key', 'text', (c) => c.notNull())
    .addColumn('partition', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('raw', 'jsonb', (c) => c.notNull())
    .addColumn('content_hash', 'text', (c) => c.notNull())
    .addColumn('first_seen_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('deleted_at', 'timestamptz')
    .addColumn('change_seq', 'bigint', (c) => c.notNull().defaultTo(sql`nextval('sync_change_seq')`))
    .addColumn('change_xid', sql`xid8`, (c) => c.notNull().defaultTo(sql`pg_current_xact_id()`))
    .addColumn('last_run_id', 'bigint');
}

const STREAM_TABLES: Array<[string, (t: CreateTableBuilder<string, string>) => CreateTableBuilder<string, string>]> = [
  [
    'docs_nodes',
    (t) =>
      t
        .addColumn('token', 'text', (c) => c.notNull())
        .addColumn('obj_token', 'text')
        .addColumn('obj_type', 'text')
        .addColumn('title', 'text')
        .addColumn('path', 'text')
        .addColumn('url', 'text')
        .addColumn('parent_token', 'text')
        .addColumn('owner_id', 'text')
        .addColumn('created_time', 'timestamptz')
        .addColumn('edited_time', 'timestamptz')
        .addColumn('source', 'text'),
  ],
  [
    'docs_content',
    (t) =>
      t
        .addColumn('token', 'text', (c) => c.notNull())
        .addColumn('obj_type', 'text')
        .addColumn('format', 'text')
        .addColumn('title', 'text')
        .addColumn('path', 'text')
        .addColumn('url', 'text')
        .addColumn('markdown', 'text')
        .addColumn('file', 'jsonb')
        .addColumn('size', 'integer')
        .addColumn('body_hash', 'text')
        .addColumn('edited_time', 'timestamptz')
        .addColumn('revision', 'integer'),
  ],
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const [name, columns] of STREAM_TABLES) {
    await columns(withSyncColumns(db.schema.createTable(name)))
      .addPrimaryKeyConstraint(`${name}_pk`, ['tenant_key', 'record_key'])
      .execute();
    await sql`create index ${sql.id(`${name}_feed_idx`)} on ${sql.table(name)} (tenant_key, change_xid, change_seq)`.execute(db);
    await db.schema.createIndex(`${name}_partition_idx`).on(name).columns(['tenant_key', 'partition']).execute();
  }
  // The content phase walks a tenant's nodes by document (obj_token).
  await db.schema.createIndex('docs_nodes_obj_idx').on('docs_nodes').columns(['tenant_key', 'obj_token']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const [name] of STREAM_TABLES) await db.schema.dropTable(name).ifExists().execute();
}
