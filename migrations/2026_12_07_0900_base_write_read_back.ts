import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // A call Lark has applied whose records are still being read back into base_records: 'written'.
  // Its records are ok (their record ids stored); the write finishes once the rows are read back,
  // and a restart resumes the reading without sending the call again.
  await sql`alter table base_write_batches drop constraint if exists base_write_batches_status_check`.execute(db);
  await sql`alter table base_write_batches add constraint base_write_batches_status_check check (status in ('planned', 'written', 'done', 'failed'))`.execute(db);
  await sql`drop index if exists base_write_batches_open_idx`.execute(db);
  await sql`create index base_write_batches_open_idx on base_write_batches (app_id, app_token, id) where status in ('planned', 'written')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`update base_write_batches set status = 'done' where status = 'written'`.execute(db);
  await sql`alter table base_write_batches drop constraint if exists base_write_batches_status_check`.execute(db);
  await sql`alter table base_write_batches add constraint base_write_batches_status_check check (status in ('planned', 'done', 'failed'))`.execute(db);
  await sql`drop index if exists base_write_batches_open_idx`.execute(db);
  await sql`create index base_write_batches_open_idx on base_write_batches (app_id, app_token, id) where status = 'planned'`.execute(db);
}
