import pg from 'pg';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { settleStartupTicket } from '../helpers/events-helpers.js';
import { waitFor } from '../helpers/wait.js';

const CUSTOM = {
  appId: 'cli_custom_apart_01',
  appSecret: 'custom-apart-secret-never-shown',
  tenantKey: 'tk-served-by-custom',
  tenantName: 'Own App Co',
};

interface TenantJson {
  appId: string;
  appType: string;
  status: string;
  lifecycle: Array<{ action: string; eventId: string | null; appId: string | null }>;
}

/**
 * A tenant is served by one app. Store-app lifecycle pushes (app_open, app_status_change,
 * app_uninstalled) act on tenants the store app serves and on nothing else; a company that
 * registered its own custom app keeps it whatever the store app's pushes say.
 */
describe('tenants and apps stay apart', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({ encrypt: true });
    await settleStartupTicket(stack);
    await whenReady(stack);
    stack.sim.addApp({ ...CUSTOM, kind: 'custom', verificationToken: 'vt-apart' });
    const res = await stack.api('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await stack?.sim.settle();
    await stack?.stop();
  });

  async function tenant(key: string): Promise<TenantJson> {
    const res = await stack.api('GET', `/api/v1/tenants/${key}`);
    expect(res.status).toBe(200);
    return (await res.json()) as TenantJson;
  }
  const handled = (uuid: string) =>
    waitFor(async () => {
      const row = await stack.db.db.selectFrom('lark_events').select('status').where('event_id', '=', uuid).executeTakeFirst();
      return row && row.status !== 'pending' ? row.status : undefined;
    }, 10_000, `event ${uuid} handled`);
  const tokenRows = (key: string) =>
    stack.db.db.selectFrom('access_tokens').select(['app_id', 'kind']).where('kind', '=', 'tenant').where('tenant_key', '=', key).orderBy('app_id').execute();

  it('the store app`s app_open, status change and uninstall never take over, pause or purge a custom app`s tenant', async () => {
    expect(await tokenRows(CUSTOM.tenantKey)).toEqual([{ app_id: CUSTOM.appId, kind: 'tenant' }]);

    const open = await stack.sim.appOpen(STORE_APP.appId, CUSTOM.tenantKey);
    expect(await handled(open.uuid)).toBe('ignored');
    const stop = await stack.sim.appStatusChange(STORE_APP.appId, CUSTOM.tenantKey, 'stop_by_tenant');
    expect(await handled(stop.uuid)).toBe('ignored');
    const gone = await stack.sim.appUninstalled(STORE_APP.appId, CUSTOM.tenantKey);
    expect(await handled(gone.uuid)).toBe('ignored');

    const t = await tenant(CUSTOM.tenantKey);
    expect({ appId: t.appId, appType: t.appType, status: t.status }).toEqual({ appId: CUSTOM.appId, appType: 'custom', status: 'active' });
    // Each push is on record, naming the app that acted.
    expect(t.lifecycle.map(({ action, eventId, appId }) => ({ action, eventId, appId }))).toEqual([
      { action: 'ignored_other_app', eventId: gone.uuid, appId: STORE_APP.appId },
      { action: 'ignored_other_app', eventId: stop.uuid, appId: STORE_APP.appId },
      { action: 'ignored_other_app', eventId: open.uuid, appId: STORE_APP.appId },
      { action: 'custom_app_registered', eventId: null, appId: CUSTOM.appId },
    ]);
    // The custom app's token survived; the store app minted none for a tenant it does not serve.
    expect(await tokenRows(CUSTOM.tenantKey)).toEqual([{ app_id: CUSTOM.appId, kind: 'tenant' }]);
    expect(await stack.larksync.services.tokens.getTenantAccessToken(CUSTOM.tenantKey)).toBe(
      stack.sim.validTenantTokens(CUSTOM.appId, CUSTOM.tenantKey)[0],
    );
  });

  it('an uninstall purges only the acting app`s tokens for the tenant', async () => {
    const key = 'tk-apart-mixed';
    const open = await stack.sim.appOpen(STORE_APP.appId, key);
    expect(await handled(open.uuid)).toBe('processed');
    await waitFor(async () => (await tokenRows(key)).length === 1, 10_000, 'the store tenant token');
    // A token row another app keeps for the same tenant key (its own business).
    await stack.db.db
      .insertInto('access_tokens')
      .values({ app_id: CUSTOM.appId, kind: 'tenant', tenant_key: key, token_sealed: null, token_hash: null, expires_at: null, refresh_at: null, minted_at: null, last_error_code: null, last_error_message: null, last_error_at: null })
      .execute();

    const gone = await stack.sim.appUninstalled(STORE_APP.appId, key);
    expect(await handled(gone.uuid)).toBe('processed');
    expect((await tenant(key)).status).toBe('uninstalled');
    expect(await tokenRows(key)).toEqual([{ app_id: CUSTOM.appId, kind: 'tenant' }]);
  });

  it('lifecycle transactions of a tenant not yet stored are serialised: an older app_open cannot undo a newer uninstall', async () => {
    const key = 'tk-apart-race';
    const tenants = stack.larksync.services.tenants;
    const t0 = Date.now();
    // Holds the install at its audit insert: an uncommitted audit row with the same (event, action).
    const holder = new pg.Client({ connectionString: stack.db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query(`insert into tenant_audit (tenant_key, action, event_id) values ($1, 'installed', 'ev-race-open')`, [key]);

      // An app_open retry (pushed first) that found no tenant row, stopped at its audit insert...
      const install = tenants.install({ tenantKey: key, appId: STORE_APP.appId }, 'ev-race-open', 'installed', new Date(t0));
      const waiting = () =>
        sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
                            where datname = current_database() and wait_event_type = 'Lock'`.execute(stack.db.db).then((r) => r.rows[0]!.n);
      await waitFor(async () => (await waiting()) >= 1, 5_000, 'the install waiting');
      // ...while the uninstall pushed after it runs (or, serialised, waits for the install).
      let uninstallDone = false;
      const uninstall = tenants.uninstall(key, STORE_APP.appId, 'ev-race-gone', new Date(t0 + 1_000)).finally(() => (uninstallDone = true));
      await waitFor(async () => uninstallDone || (await waiting()) >= 2, 5_000, 'the uninstall done or waiting');

      await holder.query('rollback');
      await Promise.all([install, uninstall]);
    } finally {
      await holder.end();
    }
    // The newer push wins: the tenant is uninstalled, whatever order the two ended in.
    const row = await stack.db.db.selectFrom('tenants').select(['status', 'status_event_at']).where('tenant_key', '=', key).executeTakeFirstOrThrow();
    expect(row.status).toBe('uninstalled');
    expect(row.status_event_at?.getTime()).toBe(t0 + 1_000);
  });
});
