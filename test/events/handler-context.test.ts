import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kysely } from 'kysely';
import { MODULES } from '../../src/connectors/index.js';
import type { Database } from '../../src/db/database.js';
import { runModuleHandler } from '../../src/events/module-events.js';
import type { Services } from '../../src/services.js';
import type { ModuleEventContext } from '../../src/sync/sync-module.js';
import { countingKysely } from '../helpers/db.js';
import { STORE_APP } from '../helpers/stack.js';
import { buildServices, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';

// Before a change event's handler runs, larksync needs the tenant (active?), its app (whose tokens
// the handler reads with) and its connector of the module (enabled? config?). At 200 events a
// second these reads were a fifth of the statements an event cost apart from the rows: they are
// one statement.
describe('a change event handler is resolved in one statement', () => {
  let f: TokenFixture;
  let services: Services;
  let reads: string[];

  beforeAll(async () => {
    f = await startTokenFixture();
    await f.seedTicket();
    for (const t of ['t-on', 't-off', 't-none', 't-gone']) await f.installTenant(t);
    await f.services.connectors.put('t-on', 'contact', { enabled: true, config: {} }, 'store');
    await f.services.connectors.put('t-off', 'contact', { enabled: false, config: {} }, 'store');
    await f.services.connectors.put('t-gone', 'contact', { enabled: true, config: {} }, 'store');
    await f.services.tenants.uninstall('t-gone', STORE_APP.appId, null);
    const counted = countingKysely(f.db, /"?(tenants|apps|connectors)"?\b/);
    reads = counted.seen;
    services = buildServices(f.config, { db: counted.db as Kysely<Database>, pool: f.db.pool, close: async () => undefined });
  });
  afterAll(async () => {
    await f?.stop();
  });

  const run = async (tenantKey: string, appId: string = STORE_APP.appId) => {
    let ctx: ModuleEventContext | undefined;
    const outcome = await runModuleHandler(
      services,
      MODULES.contact!,
      async (_event, c) => {
        ctx = c;
        return 'processed';
      },
      {},
      { eventId: `e-${tenantKey}`, tenantKey, appId, pushedAt: new Date() },
    );
    return { outcome, ctx };
  };

  it("runs the handler with the connector's config and the app's kind for an active tenant, after one read (the events-in tests use its tokens)", async () => {
    reads.length = 0;
    const { outcome, ctx } = await run('t-on');
    expect(outcome).toBe('processed');
    expect(ctx?.appKind).toBe('store');
    expect(ctx?.config).toEqual(expect.any(Object));
    expect(reads).toHaveLength(1);
  });

  it('ignores the event, after one read, when the connector is disabled or missing, the tenant uninstalled or unknown, or another app pushed it', async () => {
    for (const [tenant, appId] of [['t-off'], ['t-none'], ['t-gone'], ['t-nobody'], ['t-on', 'cli_other']] as Array<[string, string?]>) {
      reads.length = 0;
      const { outcome, ctx } = await run(tenant, appId);
      expect(outcome, tenant).toBe('ignored');
      expect(ctx, tenant).toBeUndefined();
      expect(reads, tenant).toHaveLength(1);
    }
  });
});
