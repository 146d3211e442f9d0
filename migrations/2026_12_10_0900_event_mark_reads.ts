import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.

/**
 * `event_marks.read_at`: when (the database's clock) the newest applied re-read of the object
 * started. An event received before that read started is already reflected in it, whatever its
 * Lark time says, so it needs no read of its own (an approval's task and instance events, a user
 * edited twice within a second). NULL: no read recorded (older rows).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table event_marks add column if not exists read_at timestamptz`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table event_marks drop column if exists read_at`.execute(db);
}
