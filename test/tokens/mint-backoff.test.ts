import { afterEach, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { SimulatedClock } from '../../src/clock.js';
import { AppError } from '../../src/errors.js';
import { LarkApiError } from '../../src/lark/errors.js';
import { TokenUnavailableError } from '../../src/tokens/mint-errors.js';
import { fp, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';

const T0 = Date.UTC(2026, 11, 6, 8, 0, 0);
const SECOND = 1_000;
const MINUTE = 60 * SECOND;

/**
 * A token whose refresh keeps failing (a revoked secret, 10013, 99991543) backs off exponentially
 * per token, says `failing` with the class of the last error in its health, and while the stored
 * token is still valid, callers get it (stale-while-revalidate).
 */
describe('mints that keep failing', () => {
  let f: TokenFixture | undefined;
  afterEach(async () => {
    await f?.stop();
    f = undefined;
  });

  const tenantMints = (fx: TokenFixture) => fx.sim.count(AUTH_PATHS.tenantAccessToken);
  const nextAttemptIn = async (fx: TokenFixture, clock: SimulatedClock, tenantKey: string) => {
    const h = await fx.services.tokens.health('tenant', fx.appId, tenantKey);
    return h.nextAttemptAt ? Date.parse(h.nextAttemptAt) - clock.now().getTime() : null;
  };

  it('a store tenant Lark stops serving (10013): the stored token is used while valid, mints back off and double, then it recovers', async () => {
    const clock = new SimulatedClock(T0);
    f = await startTokenFixture({ clock });
    await f.seedTicket();
    await f.installTenant('tk-backoff');
    const tokens = f.services.tokens;
    const stored = await tokens.getTenantAccessToken('tk-backoff');

    // Past the refresh point, 8 minutes before expiry; Lark refuses every tenant mint from now on.
    clock.set(T0 + 7200 * SECOND - 8 * MINUTE);
    f.sim.injectFault({ path: AUTH_PATHS.tenantAccessToken, status: 400, code: 10013, msg: 'get tenant access token fail', count: 1_000 });
    const before = tenantMints(f);

    // First failure: the caller still gets the stored, valid token; no backoff yet (one lost answer is not a pattern).
    expect(fp(await tokens.getTenantAccessToken('tk-backoff'))).toBe(fp(stored));
    expect(tenantMints(f)).toBe(before + 1);
    let health = await tokens.health('tenant', f.appId, 'tk-backoff');
    expect(health).toMatchObject({
      status: 'failing',
      failures: 1,
      nextAttemptAt: null,
      expiresAt: new Date(T0 + 7200 * SECOND).toISOString(),
      lastError: { code: '10013', class: 'app_not_available' },
    });

    // Second failure in a row: backs off.
    expect(fp(await tokens.getTenantAccessToken('tk-backoff'))).toBe(fp(stored));
    expect(tenantMints(f)).toBe(before + 2);
    const first = (await nextAttemptIn(f, clock, 'tk-backoff'))!;
    expect(first).toBeGreaterThanOrEqual(10 * SECOND);
    expect(first).toBeLessThanOrEqual(12.5 * SECOND);

    // Backing off: callers get the stored token without a call to Lark, and the cron leaves it alone.
    for (let i = 0; i < 5; i += 1) expect(fp(await tokens.getTenantAccessToken('tk-backoff'))).toBe(fp(stored));
    expect(await tokens.refreshDue()).toEqual({ refreshed: 0, failed: 0, left: 0 });
    expect(tenantMints(f)).toBe(before + 2);

    // Each further failure doubles the wait.
    const waits = [first];
    for (let i = 0; i < 3; i += 1) {
      clock.advance(waits.at(-1)! + SECOND);
      expect(await tokens.refreshDue()).toMatchObject({ failed: 1 });
      waits.push((await nextAttemptIn(f, clock, 'tk-backoff'))!);
    }
    expect(tenantMints(f)).toBe(before + 5);
    // (Whole seconds: each is twice the one before, give or take the rounding.)
    for (let i = 1; i < waits.length; i += 1) expect(Math.abs(waits[i]! - 2 * waits[i - 1]!)).toBeLessThanOrEqual(SECOND);
    health = await tokens.health('tenant', f.appId, 'tk-backoff');
    expect(health).toMatchObject({ status: 'failing', failures: 5 });

    // Once the stored token is about to expire, it is no longer handed out: the attempt due now
    // fails as Lark said, and the callers after it, while backing off, are told why without a call.
    clock.set(T0 + 7200 * SECOND - 30 * SECOND);
    const due = await tokens.getTenantAccessToken('tk-backoff').catch((e: unknown) => e);
    expect((due as LarkApiError).code).toBe(10013);
    const err = await tokens.getTenantAccessToken('tk-backoff').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenUnavailableError);
    expect((err as AppError).statusCode).toBe(503);
    expect((err as AppError).message).toContain('app_not_available');
    expect((err as AppError).message).not.toContain(stored);
    expect(tenantMints(f)).toBe(before + 6);

    // Lark serves the tenant again: the next attempt after the backoff mints, and all is well.
    f.sim.clearFaults();
    clock.advance((await nextAttemptIn(f, clock, 'tk-backoff'))! + SECOND);
    const fresh = await tokens.getTenantAccessToken('tk-backoff');
    expect(fp(fresh)).not.toBe(fp(stored));
    expect(await tokens.health('tenant', f.appId, 'tk-backoff')).toMatchObject({ status: 'valid', failures: 0, nextAttemptAt: null, lastError: null });
  });

  it('a custom app whose secret was revoked (10015): credentials_rejected, backs off, and registering the new secret ends it at once', async () => {
    const clock = new SimulatedClock(T0);
    f = await startTokenFixture({ clock });
    const app = { appId: 'cli_backoff_custom', appSecret: 'backoff-secret-one', tenantKey: 'tk-backoff-custom' };
    f.sim.addApp({ ...app, kind: 'custom', verificationToken: 'vt-backoff' });
    await f.services.apps.registerCustomApp({ appId: app.appId, appSecret: app.appSecret, domain: f.sim.url });
    const key = { kind: 'tenant' as const, appId: app.appId, tenantKey: app.tenantKey };
    const tokens = f.services.tokens;

    // The secret is reset in Lark's console; the stored token stops working.
    f.sim.getApp(app.appId).appSecret = 'backoff-secret-two';
    await tokens.invalidate(key, await tokens.getTenantAccessToken(app.tenantKey));
    const mints = () => f!.sim.count(AUTH_PATHS.tenantAccessTokenInternal, 10015);

    for (let i = 0; i < 2; i += 1) {
      const err = await tokens.getTenantAccessToken(app.tenantKey).catch((e: unknown) => e);
      expect((err as LarkApiError).code).toBe(10015);
    }
    expect(mints()).toBe(2);
    // Backing off: no token to fall back on, so callers are refused at once, without calling Lark.
    for (let i = 0; i < 3; i += 1) expect(await tokens.getTenantAccessToken(app.tenantKey).catch((e: unknown) => e)).toBeInstanceOf(TokenUnavailableError);
    expect(mints()).toBe(2);
    expect(await tokens.health('tenant', app.appId, app.tenantKey)).toMatchObject({
      status: 'failing',
      failures: 2,
      expiresAt: null,
      lastError: { code: '10015', class: 'credentials_rejected' },
    });

    // The operator registers the new secret: its token is kept and the backoff is over.
    await f.services.apps.registerCustomApp({ appId: app.appId, appSecret: 'backoff-secret-two', domain: f.sim.url });
    const token = await tokens.getTenantAccessToken(app.tenantKey);
    expect(f.sim.validTenantTokens(app.appId, app.tenantKey)).toContain(token);
    expect(await tokens.health('tenant', app.appId, app.tenantKey)).toMatchObject({ status: 'valid', failures: 0, nextAttemptAt: null });
  });

  it('an uninstalled tenant is not a failing token: no backoff, no failure count', async () => {
    const clock = new SimulatedClock(T0);
    f = await startTokenFixture({ clock });
    await f.seedTicket();
    await f.installTenant('tk-backoff-gone');
    await f.services.tenants.uninstall('tk-backoff-gone', f.appId, null);
    const err = await f.services.tokens.getTenantAccessToken('tk-backoff-gone').catch((e: unknown) => e);
    expect((err as AppError).code).toBe('tenant_not_active');
    expect((await f.services.tokens.health('tenant', f.appId, 'tk-backoff-gone')).failures).toBe(0);
  });
});
