import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * Change-event subscriptions and the health of each module's events:
 * - `lark_subscriptions`: one row per (tenant, module, object) larksync subscribes to (an approval
 *   code, a Base, a document), with what Lark answered. `wanted = false` marks one to unsubscribe.
 * - `lark_event_marks`: when events of a module last arrived for a tenant, read from lark_events by
 *   a scan that remembers where it got to (`lark_event_mark_scan`), so the endpoint writes nothing more.
 * - `connector_event_health`: the minute's verdict per connector (healthy, or why not and since when),
 *   which the scheduler reads to stretch or restore the polling interval.
 * - `connectors.events_interval_minutes`: the stretched interval (null: the default, daily).
 * - `sync_runs.rows_changed`: rows a run changed (not just read), so a poll that found changes the
 *   events did not bring is told apart from one that found nothing new.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('lark_subscriptions')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('module', 'text', (c) => c.notNull())
    // an approval code, or a file token (Base app_token, document obj_token; wiki:<node> while unresolved)
    .addColumn('object_token', 'text', (c) => c.notNull())
    // 'approval', or the Drive file_type (bitable, docx, doc, sheet, file)
    .addColumn('object_type', 'text', (c) => c.notNull())
    // what in the connector's settings named it, when not the token itself (a wiki URL: wiki:<node_token>)
    .addColumn('source', 'text')
    .addColumn('wanted', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending').check(sql`status in ('pending', 'subscribed', 'refused', 'failed')`))
    .addColumn('error_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('subscribed_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('lark_subscriptions_pk', ['tenant_key', 'module', 'object_token'])
    .execute();
  // The minute sweep's question: which tenants have subscription work due?
  await sql`create index lark_subscriptions_due_idx on lark_subscriptions (next_attempt_at)
             where status <> 'subscribed' or not wanted`.execute(db);

  await db.schema
    .createTable('lark_event_marks')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('module', 'text', (c) => c.notNull())
    .addColumn('last_event_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('lark_event_marks_pk', ['tenant_key', 'module'])
    .execute();
  await db.schema
    .createTable('lark_event_mark_scan')
    .addColumn('id', 'integer', (c) => c.primaryKey().defaultTo(1).check(sql`id = 1`))
    .addColumn('last_id', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('prev_id', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  await sql`insert into lark_event_mark_scan (id) values (1)`.execute(db);

  await db.schema
    .createTable('connector_event_health')
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('module', 'text', (c) => c.notNull())
    .addColumn('healthy', 'boolean', (c) => c.notNull())
    .addColumn('gap_reason', 'text')
    // the copy is known complete up to here (the start of the last poll that succeeded); lag = now - this
    .addColumn('behind_since', 'timestamptz')
    .addColumn('last_event_at', 'timestamptz')
    .addColumn('checked_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('connector_event_health_pk', ['tenant_key', 'module'])
    .execute();

  await db.schema.alterTable('connectors').addColumn('events_interval_minutes', 'integer').execute();
  await db.schema.alterTable('sync_runs').addColumn('rows_changed', 'integer', (c) => c.notNull().defaultTo(0)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sync_runs').dropColumn('rows_changed').execute();
  await db.schema.alterTable('connectors').dropColumn('events_interval_minutes').execute();
  await db.schema.dropTable('connector_event_health').execute();
  await db.schema.dropTable('lark_event_mark_scan').execute();
  await db.schema.dropTable('lark_event_marks').execute();
  await db.schema.dropTable('lark_subscriptions').execute();
}
