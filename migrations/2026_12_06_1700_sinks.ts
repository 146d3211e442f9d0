import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * Knowledge-base sinks (RAGFlow, Dify) a tenant's docs are delivered to, and per Lark document
 * what the sink holds. See src/sinks/delivery.ts for how these rows make a delivery crash-safe.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sinks')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull().check(sql`type in ('ragflow', 'dify')`))
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('dataset_id', 'text', (c) => c.notNull())
    .addColumn('api_key_sealed', 'bytea', (c) => c.notNull())
    .addColumn('enabled', 'boolean', (c) => c.notNull())
    // Bumped when the destination (type, url, dataset) changes: the mapping of the old one is dropped.
    .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
    // Where the sink has read the docs_content feed to (the records feed's order).
    .addColumn('cursor_xid', sql`xid8`, (c) => c.notNull().defaultTo(sql`'0'::xid8`))
    .addColumn('cursor_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    // List the whole dataset and rebuild the mapping from it before delivering (new sink, reconcile).
    .addColumn('rebuild_requested', 'boolean', (c) => c.notNull().defaultTo(true))
    // What was learnt about the remote side (Dify metadata field ids, RAGFlow's update method).
    .addColumn('remote_state', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .addColumn('last_error_at', 'timestamptz')
    .addColumn('last_delivered_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('sinks_pk', ['tenant_key', 'name'])
    .execute();

  await db.schema
    .createTable('sink_documents')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('sink_name', 'text', (c) => c.notNull())
    .addColumn('doc_token', 'text', (c) => c.notNull())
    .addColumn('generation', 'integer', (c) => c.notNull())
    // A change seen on the feed bumps want_version; a delivery that settles records the version it served.
    .addColumn('want_version', 'bigint', (c) => c.notNull().defaultTo(1))
    .addColumn('done_version', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('step', 'text', (c) => c.notNull().defaultTo('idle').check(sql`step in ('idle', 'uploading', 'processing')`))
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('pending').check(sql`status in ('pending', 'delivering', 'done', 'failed', 'deleted')`),
    )
    .addColumn('title', 'text')
    // The sink document serving this Lark document, and what it holds.
    .addColumn('remote_id', 'text')
    .addColumn('remote_name', 'text')
    .addColumn('pushed_hash', 'text')
    .addColumn('pushed_meta', 'text')
    // A version on its way (uploading: name and hash known, id not yet; processing: id known).
    .addColumn('pending_id', 'text')
    .addColumn('pending_name', 'text')
    .addColumn('pending_hash', 'text')
    .addColumn('pending_meta', 'text')
    // Sink documents of this Lark document that must go (replaced versions, orphans of a crash).
    .addColumn('obsolete_ids', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('remote_status', 'text')
    // A create may have taken effect unseen (an answer lost, a process killed): before the document
    // is called done, the sink is listed once more for copies that arrived late.
    .addColumn('check_strays', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('restarts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('errors', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('process_started_at', 'timestamptz')
    .addColumn('next_check_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .addColumn('last_error_at', 'timestamptz')
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('sink_documents_pk', ['tenant_key', 'sink_name', 'doc_token'])
    .execute();
  // The delivery's work list: documents with something left to do.
  // In the order the delivery takes them (never looked at first), so a backlog is read 50 at a time, not sorted whole.
  await sql`create index sink_documents_work_idx on sink_documents (tenant_key, sink_name, next_check_at nulls first, doc_token)
              where want_version > done_version or step <> 'idle' or cardinality(obsolete_ids) > 0`.execute(db);
  await db.schema.createIndex('sink_documents_status_idx').on('sink_documents').columns(['tenant_key', 'sink_name', 'status', 'doc_token']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sink_documents').execute();
  await db.schema.dropTable('sinks').execute();
}
