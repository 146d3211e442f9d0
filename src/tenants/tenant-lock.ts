import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';

/**
 * Serialises every lifecycle transaction of one tenant (install, status change, uninstall, a
 * custom app's registration) until the transaction ends, also while no tenant row exists yet, which
 * a row lock cannot do. Take it first in such a transaction; taking it twice in one is harmless.
 */
export async function lockTenantLifecycle(trx: Transaction<Database>, tenantKey: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${'larksync:tenant:' + tenantKey}, 0))`.execute(trx);
}
