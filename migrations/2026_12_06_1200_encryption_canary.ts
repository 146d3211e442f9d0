import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * One known value sealed under the key of the first start. Opening it at every start tells a wrong
 * ENCRYPTION_KEY (or a retired key dropped too early) apart from a working one before anything is
 * written under it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('encryption_canary')
    .addColumn('id', 'smallint', (c) => c.primaryKey().defaultTo(1).check(sql`id = 1`))
    .addColumn('sealed', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('encryption_canary').ifExists().execute();
}
