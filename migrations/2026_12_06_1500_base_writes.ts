import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // A write request into one Base table, stored before it is acknowledged (202): it survives
  // restarts, and a worker applies it in the order writes were accepted for that Base.
  await db.schema
    .createTable('base_writes')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('app_token', 'text', (c) => c.notNull())
    .addColumn('table_id', 'text', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull().check(sql`op in ('create', 'update', 'upsert', 'delete')`))
    .addColumn('identity_user', 'text')
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('queued', 'running', 'succeeded', 'failed', 'partial', 'cancelled')`),
    )
    .addColumn('idempotency_key', 'text')
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('record_count', 'integer', (c) => c.notNull())
    .addColumn('warnings', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('error_class', 'text')
    .addColumn('error_message', 'text')
    .addColumn('upstream_calls', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await sql`create unique index base_writes_idempotency_uniq on base_writes (tenant_key, idempotency_key) where idempotency_key is not null`.execute(db);
  await sql`create index base_writes_base_idx on base_writes (app_id, app_token, id) where status in ('queued', 'running')`.execute(db);
  await sql`create index base_writes_tenant_idx on base_writes (tenant_key, id)`.execute(db);

  // Each record of a write, its outcome, and the batch that carries it.
  await db.schema
    .createTable('base_write_records')
    .addColumn('write_id', 'bigint', (c) => c.notNull())
    .addColumn('idx', 'integer', (c) => c.notNull())
    .addColumn('input', 'jsonb', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('pending', 'batched', 'ok', 'failed', 'cancelled')`))
    .addColumn('batch_id', 'bigint')
    .addColumn('record_id', 'text')
    .addColumn('error', 'jsonb')
    .addPrimaryKeyConstraint('base_write_records_pk', ['write_id', 'idx'])
    .execute();
  await sql`create index base_write_records_pending_idx on base_write_records (write_id, idx) where state = 'pending'`.execute(db);
  await sql`create index base_write_records_batch_idx on base_write_records (batch_id) where batch_id is not null`.execute(db);

  // A call to Lark, planned and stored before it is sent: its client_token (UUIDv4) is reused only
  // to retry this same call, so a retry after a crash or a timeout never writes twice.
  await db.schema
    .createTable('base_write_batches')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('app_token', 'text', (c) => c.notNull())
    .addColumn('table_id', 'text', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull())
    .addColumn('identity_user', 'text')
    .addColumn('client_token', 'uuid', (c) => c.notNull())
    .addColumn('body', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('planned', 'done', 'failed')`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await sql`create index base_write_batches_open_idx on base_write_batches (app_id, app_token, id) where status = 'planned'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('base_write_batches').execute();
  await db.schema.dropTable('base_write_records').execute();
  await db.schema.dropTable('base_writes').execute();
}
