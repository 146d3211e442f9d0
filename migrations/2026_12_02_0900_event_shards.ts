import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // Events are handled per shard (a tenant's events always in the same one, in id order). The
  // shard's drain job finds them by this index rather than by ids listed in a job per batch.
  await db.schema.alterTable('lark_events').addColumn('shard', 'smallint').execute();
  // One row per shard that has ever had events: `awake` says a drain job is queued and has not
  // yet started. Storing a batch locks its shards' rows, so a drain job that starts meanwhile
  // waits for the batch to commit and then sees its events.
  await db.schema
    .createTable('lark_event_shards')
    .addColumn('shard', 'smallint', (c) => c.primaryKey())
    .addColumn('awake', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
  // Events still pending from before this migration: their batch jobs (handle_lark_events) handle
  // them, and with a shard the minute sweep also finds them. Same expression as the store statement.
  await sql`update lark_events
               set shard = (hashtextextended(coalesce('t:' || tenant_key, 'a:' || coalesce(app_id, '')), 0) & 7)::smallint
             where status = 'pending'`.execute(db);
  await sql`create index lark_events_pending_idx on lark_events (shard, id) where status = 'pending'`.execute(db);
  // Every stored push pays for each index of this table, on the event endpoint's hot path.
  // event_id is only ever compared for equality (de-duplication), so byte order will do, and it
  // spares the unique index the locale's comparisons. received_at was indexed for the daily purge
  // alone, which can as well read the table once a day.
  await sql`alter table lark_events alter column event_id type text collate "C"`.execute(db);
  await db.schema.dropIndex('lark_events_received_idx').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('lark_events_received_idx').on('lark_events').column('received_at').execute();
  await sql`alter table lark_events alter column event_id type text collate "default"`.execute(db);
  await db.schema.dropIndex('lark_events_pending_idx').execute();
  await db.schema.dropTable('lark_event_shards').execute();
  await db.schema.alterTable('lark_events').dropColumn('shard').execute();
}
