import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { AppKind, AppRow } from './apps.table.js';

export async function findApp(db: Kysely<Database>, appId: string): Promise<AppRow | undefined> {
  return db.selectFrom('apps').selectAll().where('app_id', '=', appId).executeTakeFirst();
}

export async function upsertApp(
  db: Kysely<Database>,
  row: { app_id: string; kind: AppKind; domain: string; secret_sealed: Buffer },
): Promise<void> {
  await db
    .insertInto('apps')
    .values(row)
    .onConflict((oc) =>
      oc.column('app_id').doUpdateSet({
        domain: (eb) => eb.ref('excluded.domain'),
        secret_sealed: (eb) => eb.ref('excluded.secret_sealed'),
        updated_at: sql<Date>`now()`,
      }),
    )
    .execute();
}
