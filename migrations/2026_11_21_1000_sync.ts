import { sql, type CreateTableBuilder, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * Columns every synced stream table shares. `record_key` is the natural key as text (composite
 * keys joined), `partition` scopes deletion sweeps (one Base table, one approval code),
 * `content_hash` lets an overlap re-read leave unchanged rows untouched, and `change_seq` (from
 * one sequence, bumped on every change) gives the records API a cursor that stays stable while
 * syncs write.
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
    .addColumn('last_run_id', 'bigint');
}

const STREAM_TABLES: Array<[string, (t: CreateTableBuilder<string, string>) => CreateTableBuilder<string, string>]> = [
  [
    'approval_instances',
    (t) =>
      t
        .addColumn('approval_code', 'text', (c) => c.notNull())
        .addColumn('instance_code', 'text', (c) => c.notNull())
        .addColumn('approval_name', 'text')
        .addColumn('status', 'text')
        .addColumn('serial_number', 'text')
        .addColumn('open_id', 'text')
        .addColumn('user_id', 'text')
        .addColumn('department_id', 'text')
        .addColumn('start_time', 'timestamptz')
        .addColumn('end_time', 'timestamptz'),
  ],
  [
    'approval_instance_fields',
    (t) =>
      t
        .addColumn('instance_code', 'text', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('widget_id', 'text')
        .addColumn('name', 'text')
        .addColumn('type', 'text')
        .addColumn('value', 'jsonb'),
  ],
  [
    'approval_tasks',
    (t) =>
      t
        .addColumn('instance_code', 'text', (c) => c.notNull())
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text')
        .addColumn('node_id', 'text')
        .addColumn('node_name', 'text')
        .addColumn('type', 'text')
        .addColumn('open_id', 'text')
        .addColumn('user_id', 'text')
        .addColumn('start_time', 'timestamptz')
        .addColumn('end_time', 'timestamptz'),
  ],
  [
    'approval_timeline',
    (t) =>
      t
        .addColumn('instance_code', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('type', 'text')
        .addColumn('create_time', 'timestamptz')
        .addColumn('open_id', 'text')
        .addColumn('user_id', 'text')
        .addColumn('task_id', 'text')
        .addColumn('comment', 'text'),
  ],
  [
    'base_records',
    (t) =>
      t
        .addColumn('app_token', 'text', (c) => c.notNull())
        .addColumn('table_id', 'text', (c) => c.notNull())
        .addColumn('record_id', 'text', (c) => c.notNull())
        .addColumn('fields', 'jsonb', (c) => c.notNull())
        .addColumn('created_by', 'jsonb')
        .addColumn('created_time', 'timestamptz')
        .addColumn('last_modified_by', 'jsonb')
        .addColumn('last_modified_time', 'timestamptz'),
  ],
  [
    'base_fields',
    (t) =>
      t
        .addColumn('app_token', 'text', (c) => c.notNull())
        .addColumn('table_id', 'text', (c) => c.notNull())
        .addColumn('field_id', 'text', (c) => c.notNull())
        .addColumn('field_name', 'text')
        .addColumn('type', 'integer')
        .addColumn('ui_type', 'text')
        .addColumn('is_primary', 'boolean'),
  ],
  [
    'attendance_flows',
    (t) =>
      t
        .addColumn('record_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text')
        .addColumn('creator_id', 'text')
        .addColumn('check_time', 'timestamptz')
        .addColumn('location_name', 'text')
        .addColumn('type', 'integer')
        .addColumn('is_field', 'boolean')
        .addColumn('is_wifi', 'boolean'),
  ],
  [
    'contact_departments',
    (t) =>
      t
        .addColumn('open_department_id', 'text', (c) => c.notNull())
        .addColumn('department_id', 'text')
        .addColumn('parent_department_id', 'text')
        .addColumn('name', 'text')
        .addColumn('is_deleted', 'boolean'),
  ],
  [
    'contact_users',
    (t) =>
      t
        .addColumn('open_id', 'text', (c) => c.notNull())
        .addColumn('union_id', 'text')
        .addColumn('user_id', 'text')
        .addColumn('name', 'text')
        .addColumn('department_ids', 'jsonb')
        .addColumn('is_frozen', 'boolean')
        .addColumn('is_resigned', 'boolean')
        .addColumn('is_activated', 'boolean')
        .addColumn('is_exited', 'boolean')
        .addColumn('is_unjoin', 'boolean'),
  ],
];

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create sequence if not exists sync_change_seq`.execute(db);

  await db.schema
    .createTable('connectors')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('module', 'text', (c) => c.notNull())
    .addColumn('enabled', 'boolean', (c) => c.notNull())
    .addColumn('interval_minutes', 'integer', (c) => c.notNull())
    .addColumn('config', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('connectors_pk', ['tenant_key', 'module'])
    .execute();

  await db.schema
    .createTable('sync_runs')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('module', 'text', (c) => c.notNull())
    .addColumn('mode', 'text', (c) => c.notNull().check(sql`mode in ('incremental', 'full')`))
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')`),
    )
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .addColumn('heartbeat_at', 'timestamptz')
    .addColumn('lease_id', 'uuid')
    .addColumn('counts', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('pages', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('upstream_calls', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('throttled_waits', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error_class', 'text')
    .addColumn('error_message', 'text')
    .execute();
  // One queued-or-running run per (tenant, module): the database makes "trigger" idempotent.
  await sql`create unique index sync_runs_active_uniq on sync_runs (tenant_key, module) where status in ('queued', 'running')`.execute(db);
  await db.schema.createIndex('sync_runs_tenant_idx').on('sync_runs').columns(['tenant_key', 'id']).execute();
  await sql`create index sync_runs_heartbeat_idx on sync_runs (heartbeat_at) where status = 'running'`.execute(db);

  await db.schema
    .createTable('stream_states')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('module', 'text', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('state', 'jsonb', (c) => c.notNull())
    .addColumn('run_id', 'bigint')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('stream_states_pk', ['tenant_key', 'module', 'stream'])
    .execute();

  await db.schema
    .createTable('sync_seen_keys')
    .addColumn('run_id', 'bigint', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('partition', 'text', (c) => c.notNull())
    .addColumn('record_key', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('sync_seen_keys_pk', ['run_id', 'stream', 'partition', 'record_key'])
    .execute();

  await db.schema
    .createTable('rate_buckets')
    .addColumn('bucket', 'text', (c) => c.primaryKey())
    .addColumn('tokens', 'double precision', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();

  for (const [name, columns] of STREAM_TABLES) {
    await columns(withSyncColumns(db.schema.createTable(name)))
      .addPrimaryKeyConstraint(`${name}_pk`, ['tenant_key', 'record_key'])
      .execute();
    await db.schema.createIndex(`${name}_change_idx`).on(name).columns(['tenant_key', 'change_seq']).execute();
    await db.schema.createIndex(`${name}_partition_idx`).on(name).columns(['tenant_key', 'partition']).execute();
  }
  for (const child of ['approval_instance_fields', 'approval_tasks', 'approval_timeline']) {
    await db.schema.createIndex(`${child}_instance_idx`).on(child).columns(['tenant_key', 'instance_code']).execute();
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const [name] of STREAM_TABLES) await db.schema.dropTable(name).ifExists().execute();
  for (const t of ['rate_buckets', 'sync_seen_keys', 'stream_states', 'sync_runs', 'connectors']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
  await sql`drop sequence if exists sync_change_seq`.execute(db);
}
