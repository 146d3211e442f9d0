import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { LarkApiError } from '../../src/lark/errors.js';
import { fp, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';

const TENANT = 'tk-errors';
const TOKEN_CODES = [99991663, 99991661, 99991668, 99991664] as const;
const HTTP_STATUSES = [200, 400, 401] as const;

describe('an API call whose token Lark refuses', () => {
  let f: TokenFixture;

  /** The "API call": tenant/v2/tenant/query through larksync's own HTTP client and token retry. */
  const queryTenant = () =>
    f.services.tokens.withTenantToken(TENANT, async (token, baseUrl) => {
      const res = await f.services.http.call<{ data: { tenant: { tenant_key: string } } }>(baseUrl, {
        method: 'GET',
        path: AUTH_PATHS.tenantQuery,
        bearer: token,
      });
      return res.body.data.tenant.tenant_key;
    });
  const counts = () => ({
    query: f.sim.count(AUTH_PATHS.tenantQuery),
    tenantMints: f.sim.count(AUTH_PATHS.tenantAccessToken),
    appMints: f.sim.count(AUTH_PATHS.appAccessToken),
  });
  const delta = (before: ReturnType<typeof counts>) => {
    const now = counts();
    return { query: now.query - before.query, tenantMints: now.tenantMints - before.tenantMints, appMints: now.appMints - before.appMints };
  };

  beforeAll(async () => {
    f = await startTokenFixture();
    await f.seedTicket();
    await f.installTenant(TENANT);
    expect(await queryTenant()).toBe(TENANT);
  });
  afterEach(() => {
    f.sim.clearFaults();
    f.sim.setOptions({ tokenErrorHttpStatus: 400 });
  });
  afterAll(async () => {
    await f?.stop();
  });

  describe.each(HTTP_STATUSES)('answered with HTTP %i', (status) => {
    it.each(TOKEN_CODES)('code %i: drops the token, mints again and retries once', async (code) => {
      const before = counts();
      f.sim.injectFault({ path: AUTH_PATHS.tenantQuery, status, code, msg: 'token refused (simulated)' });

      expect(await queryTenant()).toBe(TENANT);
      expect(delta(before)).toEqual({ query: 2, tenantMints: 1, appMints: 0 });
    });

    it.each(TOKEN_CODES)('code %i twice: the second refusal surfaces, no loop', async (code) => {
      const before = counts();
      f.sim.injectFault({ path: AUTH_PATHS.tenantQuery, status, code, count: 5 });

      const err = await queryTenant().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LarkApiError);
      expect((err as LarkApiError).code).toBe(code);
      expect((err as LarkApiError).httpStatus).toBe(status);
      expect(delta(before)).toEqual({ query: 2, tenantMints: 1, appMints: 0 });
    });
  });

  it('does not retry or re-mint on errors that are not about the token', async () => {
    for (const fault of [
      { status: 400, code: 99991400 },
      { status: 500, code: 1500 },
      { status: 200, code: 99991672 },
    ]) {
      const before = counts();
      f.sim.injectFault({ path: AUTH_PATHS.tenantQuery, ...fault });
      const err = await queryTenant().catch((e: unknown) => e);
      expect((err as LarkApiError).code).toBe(fault.code);
      expect(delta(before)).toEqual({ query: 1, tenantMints: 0, appMints: 0 });
    }
  });

  it.each(HTTP_STATUSES)('recovers from a token revoked upstream (errors on HTTP %i) with exactly one extra mint', async (status) => {
    f.sim.setOptions({ tokenErrorHttpStatus: status });
    const revoked = await f.services.tokens.getTenantAccessToken(TENANT);
    f.sim.revokeToken(revoked);
    const before = counts();
    const refusedBefore = f.sim.count(AUTH_PATHS.tenantQuery, 99991663);

    const got = await Promise.all(Array.from({ length: 100 }, () => queryTenant()));

    expect(got.every((k) => k === TENANT)).toBe(true);
    // A caller that read the token before the first refusal tried the revoked one, then the fresh
    // one; a later caller already found the fresh one. Either way: one success each, one mint.
    const refused = f.sim.count(AUTH_PATHS.tenantQuery, 99991663) - refusedBefore;
    expect(refused).toBeGreaterThanOrEqual(1);
    expect(delta(before)).toEqual({ query: 100 + refused, tenantMints: 1, appMints: 0 });
    expect(f.sim.count(AUTH_PATHS.tenantQuery, 0)).toBeGreaterThanOrEqual(100);
    const fresh = await f.services.tokens.getTenantAccessToken(TENANT);
    expect(fp(fresh)).not.toBe(fp(revoked));
    expect(f.sim.validTenantTokens(f.appId, TENANT).map(fp)).toEqual([fp(fresh)]);
  });

  it('recovers when the app token was revoked as well: one app mint, one tenant mint', async () => {
    const tenantToken = await f.services.tokens.getTenantAccessToken(TENANT);
    const appToken = await f.services.tokens.getAppAccessToken(f.appId);
    f.sim.revokeToken(tenantToken);
    f.sim.revokeToken(appToken);
    const before = counts();

    expect(await queryTenant()).toBe(TENANT);
    // The first tenant mint is refused (99991664: the app token), the app token is minted again, then the tenant token.
    expect(delta(before)).toEqual({ query: 2, tenantMints: 2, appMints: 1 });
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken, 99991664)).toBe(1);
    expect(fp(await f.services.tokens.getAppAccessToken(f.appId))).not.toBe(fp(appToken));
  });
});
