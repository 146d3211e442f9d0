import type { Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * A custom app's own push credentials: Lark signs and encrypts a custom app's pushes with the
 * Encrypt Key of that app's console and puts that app's Verification Token in them, so they are
 * checked with these (at `POST /lark/events/:appId`), not with the store app's. Both sealed; null
 * until the app is registered with them (its pushes are then refused).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('apps')
    .addColumn('verification_token_sealed', 'bytea')
    .addColumn('encrypt_key_sealed', 'bytea')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('apps').dropColumn('encrypt_key_sealed').dropColumn('verification_token_sealed').execute();
}
