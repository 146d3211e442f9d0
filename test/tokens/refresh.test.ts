import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import type { TokenKey } from '../../src/tokens/tokens.repository.js';
import { fp, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';
import { waitFor } from '../helpers/wait.js';

// Lark's 2 h lifetime and 30 min rotation window, scaled down to seconds so the test can wait them out.
const TTL = 6;
const ROTATION = 3;
const TENANT = 'tk-refresh';

describe('tokens are refreshed ahead of expiry', () => {
  let f: TokenFixture;
  let key: TokenKey;

  const row = async (kind: 'app' | 'tenant') => {
    const r = await f.db.db
      .selectFrom('access_tokens')
      .select(['expires_at', 'refresh_at', 'minted_at', 'mint_count'])
      .where('kind', '=', kind)
      .where('tenant_key', '=', kind === 'app' ? '' : TENANT)
      .executeTakeFirstOrThrow();
    return { expires: r.expires_at!.getTime(), refresh: r.refresh_at!.getTime(), minted: r.minted_at!.getTime(), mints: r.mint_count };
  };
  const mints = () => ({ app: f.sim.count(AUTH_PATHS.appAccessToken, 0), tenant: f.sim.count(AUTH_PATHS.tenantAccessToken, 0) });
  const untilDue = () =>
    waitFor(
      async () =>
        (await f.services.tokens.health('app', f.appId)).status === 'refresh_due' &&
        (await f.services.tokens.health('tenant', f.appId, TENANT)).status === 'refresh_due',
      10_000,
      'app and tenant tokens due',
    );

  beforeAll(async () => {
    f = await startTokenFixture({ sim: { tokenTtlSeconds: TTL, rotationWindowSeconds: ROTATION } });
    await f.seedTicket();
    await f.installTenant(TENANT);
    key = { kind: 'tenant', appId: f.appId, tenantKey: TENANT };
  });
  afterAll(async () => {
    await f?.stop();
  });

  it('plans a token too short for the refresh window half way through its life, and refreshDue leaves fresh tokens alone', async () => {
    await f.services.tokens.getTenantAccessToken(TENANT);
    for (const kind of ['app', 'tenant'] as const) {
      const r = await row(kind);
      // A 6 s token has no room for the [7, 29] min window: it is refreshed half way.
      expect(r.expires - r.minted).toBe(TTL * 1000);
      expect(r.expires - r.refresh).toBe(Math.floor(TTL / 2) * 1000);
    }
    expect(await f.services.tokens.refreshDue()).toEqual({ refreshed: 0, failed: 0, left: 0 });
    expect(mints()).toEqual({ app: 1, tenant: 1 });
  });

  it('gets the same token back from Lark while at least the rotation window remains', async () => {
    const first = await f.services.tokens.getTenantAccessToken(TENANT);
    expect(await f.services.tokens.invalidate(key, first)).toBe(true);
    const again = await f.services.tokens.getTenantAccessToken(TENANT);

    expect(fp(again)).toBe(fp(first));
    expect(mints()).toEqual({ app: 1, tenant: 2 });
    // Lark said how long the reused token has left, and that (not a fresh 6 s) is what we keep.
    const r = await row('tenant');
    const left = Math.round((r.expires - r.minted) / 1000);
    expect(left).toBeLessThan(TTL);
    expect(r.expires - r.refresh).toBe(Math.floor(left / 2) * 1000);
  });

  it('refreshDue mints the due app and tenant tokens once their refresh time passes; Lark then rotates them', async () => {
    const before = { tenant: await f.services.tokens.getTenantAccessToken(TENANT), app: await f.services.tokens.getAppAccessToken(f.appId) };
    await untilDue();

    const result = await f.services.tokens.refreshDue();
    expect(result.failed).toBe(0);
    expect(result.refreshed).toBe(2);
    expect(mints()).toEqual({ app: 2, tenant: 3 });

    const after = { tenant: await f.services.tokens.getTenantAccessToken(TENANT), app: await f.services.tokens.getAppAccessToken(f.appId) };
    expect(fp(after.tenant)).not.toBe(fp(before.tenant));
    expect(fp(after.app)).not.toBe(fp(before.app));
    // The old token stays valid upstream until its own expiry, so calls in flight do not fail.
    expect(f.sim.validTenantTokens(f.appId, TENANT).map(fp).sort()).toEqual([fp(before.tenant), fp(after.tenant)].sort());
    expect((await f.services.tokens.health('tenant', f.appId, TENANT)).status).toBe('valid');
    expect(await f.services.tokens.refreshDue()).toEqual({ refreshed: 0, failed: 0, left: 0 });
    expect(mints()).toEqual({ app: 2, tenant: 3 });
  });

  it('without refreshDue, the first callers after refresh_at mint once and all get the rotated token', async () => {
    const before = await f.services.tokens.getTenantAccessToken(TENANT);
    await untilDue();

    const got = await Promise.all(Array.from({ length: 50 }, () => f.services.tokens.getTenantAccessToken(TENANT)));
    expect(new Set(got.map(fp)).size).toBe(1);
    expect(fp(got[0])).not.toBe(fp(before));
    expect(mints()).toEqual({ app: 3, tenant: 4 });
    expect((await row('tenant')).mints).toBe(4);
  });

  it('two instances refreshing at once (refreshDue in both, plus callers) still mint each due token once', async () => {
    const other = await f.restart();
    try {
      await untilDue();
      const [a, b, callers] = await Promise.all([
        f.services.tokens.refreshDue(),
        other.services.tokens.refreshDue(),
        Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? other.services : f.services).tokens.getTenantAccessToken(TENANT))),
      ]);
      expect(a.failed + b.failed).toBe(0);
      expect(new Set(callers.map(fp)).size).toBe(1);
      expect(mints()).toEqual({ app: 4, tenant: 5 });
    } finally {
      await other.close();
    }
  });
});
