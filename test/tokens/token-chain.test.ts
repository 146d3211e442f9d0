import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { loadConfig } from '../../src/config/env.js';
import { connectDatabase } from '../../src/db/connect.js';
import { AppError } from '../../src/errors.js';
import { TenantNotActiveError } from '../../src/tenants/tenant-errors.js';
import { tokenContext } from '../../src/tokens/tokens.repository.js';
import { buildServices, dumpDatabase, fp, leakedSecrets, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';
import { STORE_APP } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const CUSTOM_APP = {
  appId: 'cli_custom_chain_0001',
  appSecret: 'custom-secret-value-do-not-log',
  tenantKey: 'tk-custom-chain',
  tenantName: 'Custom Chain Corp',
};

async function tokenRows(f: TokenFixture) {
  return f.db.db.selectFrom('access_tokens').selectAll().orderBy('kind').orderBy('tenant_key').execute();
}

describe('store app token chain', () => {
  let f: TokenFixture;
  let ticket: string;

  beforeAll(async () => {
    f = await startTokenFixture();
    f.sim.addApp({
      appId: CUSTOM_APP.appId,
      appSecret: CUSTOM_APP.appSecret,
      kind: 'custom',
      verificationToken: 'vtok-custom-chain',
      tenantKey: CUSTOM_APP.tenantKey,
      tenantName: CUSTOM_APP.tenantName,
    });
    ticket = await f.seedTicket();
    await f.installTenant('tk-chain-a');
    await f.installTenant('tk-chain-b');
  });
  afterAll(async () => {
    await f?.stop();
  });

  it('goes app_ticket -> app_access_token -> one tenant_access_token per tenant_key, and stores them sealed', async () => {
    const tokens = f.services.tokens;
    const a = await tokens.getTenantAccessToken('tk-chain-a');
    const b = await tokens.getTenantAccessToken('tk-chain-b');
    const appToken = await tokens.getAppAccessToken(f.appId);

    expect(a.startsWith('t-')).toBe(true);
    expect(b.startsWith('t-')).toBe(true);
    expect(fp(a)).not.toBe(fp(b));
    expect(appToken.startsWith('a-')).toBe(true);
    // Lark itself says these are the live tokens of these tenants.
    expect(f.sim.validTenantTokens(f.appId, 'tk-chain-a').map(fp)).toEqual([fp(a)]);
    expect(f.sim.validTenantTokens(f.appId, 'tk-chain-b').map(fp)).toEqual([fp(b)]);
    expect(f.sim.count(AUTH_PATHS.appAccessToken, 0)).toBe(1);
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken, 0)).toBe(2);
    expect(f.sim.count(AUTH_PATHS.ticketResend)).toBe(0);

    const rows = await tokenRows(f);
    expect(rows.map((r) => [r.kind, r.tenant_key, r.mint_count])).toEqual([
      ['app', '', 1],
      ['tenant', 'tk-chain-a', 1],
      ['tenant', 'tk-chain-b', 1],
    ]);
    for (const row of rows) {
      expect(row.token_sealed).toBeInstanceOf(Buffer);
      expect(row.expires_at!.getTime()).toBeGreaterThan(Date.now() + 7000_000);
      // Each token's own refresh point, between 29 and 7 min before Lark's 2 h expiry: inside the
      // last 30 minutes, where Lark rotates (refresh-plan.ts).
      const left = row.expires_at!.getTime() - row.refresh_at!.getTime();
      expect(left).toBeGreaterThanOrEqual(7 * 60 * 1000);
      expect(left).toBeLessThanOrEqual(29 * 60 * 1000);
    }
    // A sealed token only opens in its own row: copied into another tenant's row it is refused.
    const rowA = rows.find((r) => r.tenant_key === 'tk-chain-a')!;
    const keyA = { kind: 'tenant' as const, appId: f.appId, tenantKey: 'tk-chain-a' };
    const keyB = { kind: 'tenant' as const, appId: f.appId, tenantKey: 'tk-chain-b' };
    expect(fp(f.services.sealer.open(rowA.token_sealed!, tokenContext(keyA)))).toBe(fp(a));
    expect(() => f.services.sealer.open(rowA.token_sealed!, tokenContext(keyB))).toThrow(/authentication/);

    const dump = await dumpDatabase(f.db);
    // The dump really holds every row, bytea as hex: a token stored as plain bytes would show up.
    expect(dump.includes('tk-chain-a')).toBe(true);
    expect(dump.includes(rowA.token_sealed!.toString('hex'))).toBe(true);
    expect(
      leakedSecrets(dump, {
        appSecret: STORE_APP.appSecret,
        appTicket: ticket,
        appAccessToken: appToken,
        tenantTokenA: a,
        tenantTokenB: b,
      }),
    ).toEqual([]);
  });

  it('reuses stored tokens after a restart (new services, new pool) without minting', async () => {
    const before = { app: f.sim.count(AUTH_PATHS.appAccessToken), tenant: f.sim.count(AUTH_PATHS.tenantAccessToken) };
    const original = await f.services.tokens.getTenantAccessToken('tk-chain-a');
    const restarted = await f.restart();
    try {
      const again = await Promise.all(Array.from({ length: 20 }, () => restarted.services.tokens.getTenantAccessToken('tk-chain-a')));
      expect(new Set(again).size).toBe(1);
      expect(fp(again[0])).toBe(fp(original));
      expect((await restarted.services.tokens.health('tenant', f.appId, 'tk-chain-a')).status).toBe('valid');
    } finally {
      await restarted.close();
    }
    expect(f.sim.count(AUTH_PATHS.appAccessToken)).toBe(before.app);
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(before.tenant);
    expect((await tokenRows(f)).map((r) => r.mint_count)).toEqual([1, 1, 1]);
  });

  it('after ENCRYPTION_KEY changes (old key not kept), mints tokens anew instead of failing on what it cannot open', async () => {
    const before = { app: f.sim.count(AUTH_PATHS.appAccessToken), tenant: f.sim.count(AUTH_PATHS.tenantAccessToken) };
    const handle = connectDatabase(f.db.url, { max: 5 });
    try {
      const config = loadConfig({ ...f.env, ENCRYPTION_KEY: randomBytes(32).toString('base64') });
      const rekeyed = buildServices(config, handle);
      // What bootstrap does: the store app's secret comes from the environment, sealed anew.
      await rekeyed.apps.ensureStoreApp();
      // Tokens and the ticket sealed under the lost key cannot be opened; Lark can issue them again.
      const calls = Promise.all(Array.from({ length: 10 }, () => rekeyed.tokens.getTenantAccessToken('tk-chain-a')));
      await waitFor(() => f.sim.count(AUTH_PATHS.ticketResend) === 1, 5_000, 'a resend for the unreadable ticket');
      // Lark's answering push, stored the way the app_ticket handler stores it.
      await rekeyed.tickets.save(f.appId, f.sim.issueTicket(f.appId), new Date(), null);
      const tokens = await calls;
      expect(new Set(tokens.map(fp)).size).toBe(1);
      expect(f.sim.validTenantTokens(f.appId, 'tk-chain-a').map(fp)).toEqual([fp(tokens[0])]);
      expect(f.sim.count(AUTH_PATHS.appAccessToken)).toBe(before.app + 1);
      expect(f.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(before.tenant + 1);
      // The old ticket could not be opened either, so Lark was asked for a new one.
      expect(f.sim.count(AUTH_PATHS.ticketResend)).toBe(1);
    } finally {
      await handle.close();
      // The rest of this file runs with the original key again.
      await f.services.apps.ensureStoreApp();
      await f.seedTicket();
    }
  });

  it('mints a custom app tenant token from tenant_access_token/internal and keeps it sealed', async () => {
    const registered = await f.services.apps.registerCustomApp({
      appId: CUSTOM_APP.appId,
      appSecret: CUSTOM_APP.appSecret,
      domain: f.sim.url,
    });
    expect(registered).toEqual({ appId: CUSTOM_APP.appId, tenantKey: CUSTOM_APP.tenantKey, type: 'custom' });
    expect(f.sim.count(AUTH_PATHS.tenantAccessTokenInternal, 0)).toBe(1);

    // Registration proved the credentials by minting; that token is kept, not minted again.
    const token = await f.services.tokens.getTenantAccessToken(CUSTOM_APP.tenantKey);
    expect(f.sim.validTenantTokens(CUSTOM_APP.appId, CUSTOM_APP.tenantKey).map(fp)).toEqual([fp(token)]);
    expect(f.sim.count(AUTH_PATHS.tenantAccessTokenInternal)).toBe(1);

    // Dropped, it is minted again from /internal; the store-app endpoints are never used for it.
    const storeCalls = f.sim.count(AUTH_PATHS.tenantAccessToken) + f.sim.count(AUTH_PATHS.appAccessToken);
    const key = { kind: 'tenant' as const, appId: CUSTOM_APP.appId, tenantKey: CUSTOM_APP.tenantKey };
    expect(await f.services.tokens.invalidate(key, token)).toBe(true);
    f.sim.revokeToken(token);
    const fresh = await Promise.all(Array.from({ length: 50 }, () => f.services.tokens.getTenantAccessToken(CUSTOM_APP.tenantKey)));
    expect(new Set(fresh).size).toBe(1);
    expect(fp(fresh[0])).not.toBe(fp(token));
    expect(f.sim.count(AUTH_PATHS.tenantAccessTokenInternal, 0)).toBe(2);
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken) + f.sim.count(AUTH_PATHS.appAccessToken)).toBe(storeCalls);

    const name = await f.services.tokens.withTenantToken(CUSTOM_APP.tenantKey, async (t, baseUrl) => {
      const res = await f.services.http.call<{ data: { tenant: { name: string } } }>(baseUrl, {
        method: 'GET',
        path: AUTH_PATHS.tenantQuery,
        bearer: t,
      });
      return res.body.data.tenant.name;
    });
    expect(name).toBe(CUSTOM_APP.tenantName);

    const dump = await dumpDatabase(f.db);
    expect(leakedSecrets(dump, { customSecret: CUSTOM_APP.appSecret, firstToken: token, freshToken: fresh[0]! })).toEqual([]);
  });

  it('refuses a custom app whose secret Lark rejects, and stores nothing for it', async () => {
    const err = await f.services.apps
      .registerCustomApp({ appId: 'cli_custom_wrong_secret', appSecret: 'not-the-secret', domain: f.sim.url })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('invalid_app_credentials');
    expect(await f.db.db.selectFrom('apps').select('app_id').where('app_id', '=', 'cli_custom_wrong_secret').execute()).toEqual([]);
  });

  it("purgeTenant deletes that tenant's tokens and nothing else", async () => {
    await f.installTenant('tk-chain-purge');
    await f.services.tokens.getTenantAccessToken('tk-chain-purge');
    const others = (await tokenRows(f)).filter((r) => r.tenant_key !== 'tk-chain-purge').map((r) => r.tenant_key);

    expect(await f.services.tokens.purgeTenant('tk-chain-purge', f.appId)).toBe(1);
    expect(await f.services.tokens.purgeTenant('tk-chain-purge', f.appId)).toBe(0);
    expect((await tokenRows(f)).map((r) => r.tenant_key)).toEqual(others);
  });

  it('refuses tokens for an uninstalled tenant, whose tokens are gone after the uninstall and purge', async () => {
    await f.services.tokens.getTenantAccessToken('tk-chain-b');
    const tenantCalls = f.sim.count(AUTH_PATHS.tenantAccessToken);
    await f.services.tenants.uninstall('tk-chain-b', f.appId, null);

    const err = await f.services.tokens.getTenantAccessToken('tk-chain-b').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TenantNotActiveError);
    expect((err as AppError).code).toBe('tenant_not_active');
    const viaCall = await f.services.tokens.withTenantToken('tk-chain-b', async () => 'called').catch((e: unknown) => e);
    expect((viaCall as AppError).code).toBe('tenant_not_active');
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(tenantCalls);

    // What the app_uninstalled handler does; the uninstall itself may already have dropped the rows.
    await f.services.tokens.purgeTenant('tk-chain-b', f.appId);
    const left = await f.db.db.selectFrom('access_tokens').select('tenant_key').where('tenant_key', '=', 'tk-chain-b').execute();
    expect(left).toEqual([]);
    expect((await tokenRows(f)).map((r) => r.tenant_key).sort()).toEqual(['', 'tk-chain-a', CUSTOM_APP.tenantKey]);

    const unknown = await f.services.tokens.getTenantAccessToken('tk-never-seen').catch((e: unknown) => e);
    expect((unknown as AppError).code).toBe('tenant_not_found');
  });

  it('does not let a mint that was in flight during the uninstall leave a token behind', async () => {
    await f.installTenant('tk-chain-race');
    // Lark answers this mint slowly, so the uninstall and the purge land while it is in flight.
    f.sim.injectFault({ path: AUTH_PATHS.tenantAccessToken, delayMs: 600 });
    const mint = f.services.tokens.getTenantAccessToken('tk-chain-race').catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    await f.services.tenants.uninstall('tk-chain-race', f.appId, null);
    await f.services.tokens.purgeTenant('tk-chain-race', f.appId);
    await mint;

    const rows = await f.db.db
      .selectFrom('access_tokens')
      .select(['tenant_key'])
      .where('tenant_key', '=', 'tk-chain-race')
      .where('token_sealed', 'is not', null)
      .execute();
    expect(rows).toEqual([]);
  });
});
