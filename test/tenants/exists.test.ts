import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { TenantsService } from '../../src/tenants/tenants.service.js';
import { countingKysely, createTestDatabase, type TestDatabase } from '../helpers/db.js';

// The records API asks whether a tenant exists for every empty page (an unknown tenant is a 404).
// A key found once stays found (no tenant row is ever deleted); a miss is asked again every time.
describe('TenantsService.exists', () => {
  let db: TestDatabase;
  let counted: Kysely<Database>;
  let tenantReads: string[];

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ db: counted, seen: tenantReads } = countingKysely(db, /from "tenants"/));
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('reads a found tenant once, and a missing one every time until it exists', async () => {
    const tenants = new TenantsService(counted);
    // The app row a tenant names (its secret is never opened here).
    await sql`insert into apps (app_id, kind, domain, secret_sealed) values ('cli_a', 'store', 'feishu', ${Buffer.from('sealed')})`.execute(db.db);
    await sql`insert into tenants (tenant_key, app_id, status) values ('t-known', 'cli_a', 'uninstalled')`.execute(db.db);

    for (let i = 0; i < 5; i += 1) expect(await tenants.exists('t-known')).toBe(true);
    expect(tenantReads).toHaveLength(1);

    expect(await tenants.exists('t-later')).toBe(false);
    expect(await tenants.exists('t-later')).toBe(false);
    expect(tenantReads).toHaveLength(3);
    // Installed after two misses: found at once, then no longer read.
    await sql`insert into tenants (tenant_key, app_id, status) values ('t-later', 'cli_a', 'active')`.execute(db.db);
    expect(await tenants.exists('t-later')).toBe(true);
    expect(await tenants.exists('t-later')).toBe(true);
    expect(tenantReads).toHaveLength(4);

    // Another instance (another replica) has read nothing yet.
    expect(await new TenantsService(counted).exists('t-known')).toBe(true);
    expect(tenantReads).toHaveLength(5);
  });
});
