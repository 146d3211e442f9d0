import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { ConfigError } from '../config/env.js';
import type { Sealer } from '../crypto/sealer.js';
import { appSecretContext } from '../apps/app-credentials.js';

export const CANARY_CONTEXT = 'encryption_canary';
const CANARY_VALUE = 'larksync encryption canary v1';

const WRONG_KEY = new ConfigError(
  'ENCRYPTION_KEY',
  'does not open what this database holds sealed: set it to the key the data was sealed with, or keep that key in ENCRYPTION_KEYS_RETIRED until `npm run reseal` has run',
);

function opens(sealer: Sealer, sealed: Uint8Array, context: string, expected?: string): boolean {
  try {
    const value = sealer.open(sealed, context);
    return expected === undefined || value === expected;
  } catch {
    return false;
  }
}

/**
 * Checks, before anything is read or written, that the configured keys open this database's
 * sealed data; throws a ConfigError naming ENCRYPTION_KEY when they don't. Without this a wrong
 * key started "fine": it re-sealed the store app's secret over the old one, failed every stored
 * event and treated every ticket and token as missing.
 *
 * The canary is sealed at the first start. A database from before the canary existed is probed
 * through one app secret first, so the canary is never sealed under a wrong key.
 */
export async function checkEncryptionCanary(db: Kysely<Database>, sealer: Sealer): Promise<'created' | 'ok'> {
  const row = await db.selectFrom('encryption_canary').select('sealed').where('id', '=', 1).executeTakeFirst();
  if (row) {
    if (!opens(sealer, row.sealed, CANARY_CONTEXT, CANARY_VALUE)) throw WRONG_KEY;
    return 'ok';
  }
  const app = await db.selectFrom('apps').select(['app_id', 'secret_sealed']).orderBy('created_at').limit(1).executeTakeFirst();
  if (app && !opens(sealer, app.secret_sealed, appSecretContext(app.app_id))) throw WRONG_KEY;
  await db
    .insertInto('encryption_canary')
    .values({ id: 1, sealed: sealer.seal(CANARY_VALUE, CANARY_CONTEXT) })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  // Another replica may have won the insert, under its own key: check the row that stayed.
  const kept = await db.selectFrom('encryption_canary').select('sealed').where('id', '=', 1).executeTakeFirstOrThrow();
  if (!opens(sealer, kept.sealed, CANARY_CONTEXT, CANARY_VALUE)) throw WRONG_KEY;
  return 'created';
}
