import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // Failed events are few, and the minute sweep (re-queueing those whose retry job is gone) and
  // the failed-events gauge read them every minute or scrape: a partial index keeps both reads
  // tiny, and costs the event endpoint nothing (new rows are pending, so they are not indexed).
  await sql`create index lark_events_failed_idx on lark_events (id) where status = 'failed'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('lark_events_failed_idx').execute();
}
