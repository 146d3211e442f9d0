import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('apps')
    .addColumn('app_id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('store', 'custom')`))
    .addColumn('domain', 'text', (c) => c.notNull())
    .addColumn('secret_sealed', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('app_tickets')
    .addColumn('app_id', 'text', (c) => c.primaryKey().references('apps.app_id').onDelete('cascade'))
    .addColumn('ticket_sealed', 'bytea', (c) => c.notNull())
    .addColumn('ticket_hash', 'text', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('event_id', 'text')
    .execute();

  // One row per app: an atomic "older than the cool-down?" update lets many callers in many
  // processes agree on a single resend.
  await db.schema
    .createTable('ticket_resends')
    .addColumn('app_id', 'text', (c) => c.primaryKey().references('apps.app_id').onDelete('cascade'))
    .addColumn('last_requested_at', 'timestamptz', (c) => c.notNull())
    .addColumn('requests', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();

  await db.schema
    .createTable('tenants')
    .addColumn('tenant_key', 'text', (c) => c.primaryKey())
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.app_id'))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'paused', 'uninstalled')`))
    .addColumn('status_reason', 'text')
    .addColumn('name', 'text')
    .addColumn('installer_open_id', 'text')
    .addColumn('installer_employee_open_id', 'text')
    .addColumn('applicants', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('installed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('status_changed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('uninstalled_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('tenants_app_id_idx').on('tenants').column('app_id').execute();

  await db.schema
    .createTable('tenant_audit')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('detail', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('event_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('tenant_audit_tenant_idx').on('tenant_audit').columns(['tenant_key', 'id']).execute();
  // An event applies its lifecycle change at most once, even when its job runs twice.
  await db.schema
    .createIndex('tenant_audit_event_action_uniq')
    .on('tenant_audit')
    .columns(['event_id', 'action'])
    .unique()
    .where(sql.ref('event_id'), 'is not', null)
    .execute();

  // App tokens use tenant_key = ''. token_sealed is null after an invalidation, which keeps the
  // last error for health reports while forcing a new mint.
  await db.schema
    .createTable('access_tokens')
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.app_id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('app', 'tenant')`))
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('token_sealed', 'bytea')
    .addColumn('token_hash', 'text')
    .addColumn('expires_at', 'timestamptz')
    .addColumn('refresh_at', 'timestamptz')
    .addColumn('minted_at', 'timestamptz')
    .addColumn('mint_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error_code', 'text')
    .addColumn('last_error_message', 'text')
    .addColumn('last_error_at', 'timestamptz')
    .addPrimaryKeyConstraint('access_tokens_pk', ['app_id', 'kind', 'tenant_key'])
    .execute();
  await db.schema.createIndex('access_tokens_refresh_idx').on('access_tokens').column('refresh_at').execute();

  await db.schema
    .createTable('lark_events')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('event_id', 'text', (c) => c.notNull().unique())
    .addColumn('app_id', 'text')
    .addColumn('schema_version', 'text', (c) => c.notNull().check(sql`schema_version in ('v1', 'v2')`))
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('tenant_key', 'text')
    .addColumn('payload_sealed', 'bytea', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('pending').check(sql`status in ('pending', 'processed', 'ignored', 'failed')`),
    )
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('processed_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('lark_events_received_idx').on('lark_events').column('received_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['lark_events', 'access_tokens', 'tenant_audit', 'tenants', 'ticket_resends', 'app_tickets', 'apps']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
