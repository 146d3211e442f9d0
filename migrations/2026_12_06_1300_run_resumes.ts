import type { Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // How often a run was taken over after its slice went silent (its process died): a run whose
  // slices keep dying (a page that exhausts memory) is failed after a few, not passed from replica
  // to replica forever.
  await db.schema.alterTable('sync_runs').addColumn('resumes', 'integer', (c) => c.notNull().defaultTo(0)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sync_runs').dropColumn('resumes').execute();
}
