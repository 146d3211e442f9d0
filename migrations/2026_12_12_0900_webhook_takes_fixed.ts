import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * `webhook_deliveries.takes_fixed`: a records.changed head has taken in what it will announce
 * (the later pending deliveries it coalesced, `coalesced_into` = its id), so its body is fixed by
 * rows and made from them at every attempt until the first one stores it. Set in the statement
 * that reads the head (lane-drain.ts): fixing the body used to be a statement of its own before
 * each first attempt. False for older rows, whose body was stored when they took theirs in.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table webhook_deliveries add column if not exists takes_fixed boolean not null default false`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table webhook_deliveries drop column if exists takes_fixed`.execute(db);
}
