import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // A mint is claimed with a short lease on the token's row instead of a transaction (and
  // advisory lock) held open across Lark's HTTP call: `mint_lease` names the claim, and
  // `minting_until` is when others may take over from a process that died mid-mint.
  // `failures` counts mints failed in a row, `next_attempt_at` is the exponential backoff that
  // follows from it, and `last_error_class` says what kind of failure the last one was (the
  // credentials, the tenant's installation, Lark itself, ...) for the tenant's token health.
  await db.schema
    .alterTable('access_tokens')
    .addColumn('mint_lease', 'uuid')
    .addColumn('minting_until', 'timestamptz')
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('last_error_class', 'text')
    .execute();
  // A row whose last attempt failed (an error newer than its token) has failed at least once.
  await sql`update access_tokens set failures = 1
             where last_error_at is not null and (minted_at is null or last_error_at > minted_at)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('access_tokens')
    .dropColumn('mint_lease')
    .dropColumn('minting_until')
    .dropColumn('failures')
    .dropColumn('next_attempt_at')
    .dropColumn('last_error_class')
    .execute();
}
