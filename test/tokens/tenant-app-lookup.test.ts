import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { findTenantApp } from '../../src/apps/apps.repository.js';
import { countingKysely, createTestDatabase, type TestDatabase } from '../helpers/db.js';

// The token service resolves a tenant's app for every holder of its tokens (each change event
// group, sync slice, subscription job): the tenant's status and the app's row in one read.
describe('findTenantApp', () => {
  let db: TestDatabase;
  let counted: Kysely<Database>;
  let reads: string[];

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ db: counted, seen: reads } = countingKysely(db, /"tenants"|"apps"/));
    await sql`insert into apps (app_id, kind, domain, secret_sealed) values ('cli_lookup', 'store', 'larksuite', ${Buffer.from('sealed')})`.execute(db.db);
    await sql`insert into tenants (tenant_key, app_id, status) values ('t-active', 'cli_lookup', 'active'), ('t-gone', 'cli_lookup', 'uninstalled')`.execute(db.db);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("gives the tenant's status and its app's row in one statement, and nothing for an unknown tenant", async () => {
    const active = await findTenantApp(counted, 't-active');
    expect(active).toMatchObject({ appId: 'cli_lookup', status: 'active', app: { app_id: 'cli_lookup', kind: 'store', domain: 'larksuite' } });
    expect(active?.app?.secret_sealed.toString()).toBe('sealed');
    expect(reads).toHaveLength(1);
    expect(await findTenantApp(counted, 't-gone')).toMatchObject({ status: 'uninstalled', app: { app_id: 'cli_lookup' } });
    expect(await findTenantApp(counted, 't-nobody')).toBeUndefined();
    expect(reads).toHaveLength(3);
  });
});
