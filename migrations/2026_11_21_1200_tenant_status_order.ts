import type { Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // Push time of the Lark event that last set the status: an older event (a retry after a failed
  // job, or Lark's own reordering) must not undo a newer one.
  await db.schema.alterTable('tenants').addColumn('status_event_at', 'timestamptz').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('tenants').dropColumn('status_event_at').execute();
}
