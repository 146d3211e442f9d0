import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // graphile-worker keeps a crashed worker's job (and its named queue) locked for hours; these
  // heartbeats let the live processes tell a dead worker from a busy one and unlock it.
  await db.schema
    .createTable('worker_processes')
    .addColumn('worker_id', 'text', (c) => c.primaryKey())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('hostname', 'text', (c) => c.notNull())
    .addColumn('heartbeat_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('worker_processes').ifExists().execute();
}
