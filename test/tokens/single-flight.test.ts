import { afterEach, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { fp, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';
import { spawnCaller } from '../helpers/caller-process.js';


describe('each token is minted once however many callers ask at once', () => {
  let f: TokenFixture | undefined;
  afterEach(async () => {
    await f?.stop();
    f = undefined;
  });

  it('200 concurrent callers in one process: one app_access_token, one tenant_access_token', async () => {
    f = await startTokenFixture();
    await f.seedTicket();
    await f.installTenant('tk-sf-one');
    const tokens = f.services.tokens;

    const got = await Promise.all(Array.from({ length: 200 }, () => tokens.getTenantAccessToken('tk-sf-one')));

    expect(new Set(got.map(fp)).size).toBe(1);
    expect(f.sim.validTenantTokens(f.appId, 'tk-sf-one').map(fp)).toEqual([fp(got[0])]);
    expect(f.sim.count(AUTH_PATHS.appAccessToken)).toBe(1);
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(1);
    const rows = await f.db.db.selectFrom('access_tokens').select(['kind', 'mint_count']).orderBy('kind').execute();
    expect(rows).toEqual([
      { kind: 'app', mint_count: 1 },
      { kind: 'tenant', mint_count: 1 },
    ]);
  });

  it('200 callers in two real processes at the same instant: one app_access_token, one tenant_access_token', async () => {
    f = await startTokenFixture();
    await f.seedTicket();
    await f.installTenant('tk-sf-two');
    const env = { ...f.env, TENANT_KEY: 'tk-sf-two', CALLS: '100', POOL_MAX: '10' };

    const callers = [spawnCaller('test/helpers/token-caller.ts', env), spawnCaller('test/helpers/token-caller.ts', env)];
    await Promise.all(callers.map((c) => c.ready));
    const startAt = Date.now() + 300;
    for (const c of callers) c.start(startAt);
    const reports = await Promise.all(callers.map((c) => c.report));

    // Both processes were waiting at the barrier, and each fired before the other was done:
    // the calls really overlapped, rather than one process finding the other's stored token.
    for (const r of reports) expect(r.readyMarginMs).toBeGreaterThan(0);
    expect(Math.max(...reports.map((r) => r.firedAt))).toBeLessThan(Math.min(...reports.map((r) => r.doneAt)));
    expect(reports[0]!.pid).not.toBe(reports[1]!.pid);

    const results = reports.flatMap((r) => r.results);
    expect(results).toHaveLength(200);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const seen = new Set(results.map((r) => (r.ok ? r.token : '')));
    expect(seen.size).toBe(1);
    expect([...seen]).toEqual(f.sim.validTenantTokens(f.appId, 'tk-sf-two').map(fp));

    expect(f.sim.count(AUTH_PATHS.appAccessToken)).toBe(1);
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(1);
    expect(f.sim.count(AUTH_PATHS.ticketResend)).toBe(0);
    const rows = await f.db.db.selectFrom('access_tokens').select(['kind', 'mint_count']).orderBy('kind').execute();
    expect(rows).toEqual([
      { kind: 'app', mint_count: 1 },
      { kind: 'tenant', mint_count: 1 },
    ]);

    const durations = reports.flatMap((r) => r.durationsMs).sort((a, b) => a - b);
    console.info(
      `two processes x 100 callers: app mints=${f.sim.count(AUTH_PATHS.appAccessToken)} tenant mints=${f.sim.count(AUTH_PATHS.tenantAccessToken)} ` +
        `fire skew=${Math.abs(reports[0]!.firedAt - reports[1]!.firedAt)} ms, per-call p50=${durations[100]} ms, max=${durations.at(-1)} ms`,
    );
  }, 30_000);

  it('more tenants minting at once than the pool has connections still finishes (no nested pool waits)', async () => {
    f = await startTokenFixture();
    await f.seedTicket();
    const keys = Array.from({ length: 30 }, (_, i) => `tk-sf-many-${i}`);
    for (const k of keys) await f.installTenant(k);
    // The fixture's pool has 10 connections; 30 first-time tenants (and their shared app token) must
    // not starve it. Starved, every mint fails once the pool's 5 s connection timeout passes.
    const got = await Promise.all(keys.flatMap((k) => [0, 1, 2].map(() => f!.services.tokens.getTenantAccessToken(k))));

    expect(new Set(got.map(fp)).size).toBe(30);
    expect(f.sim.count(AUTH_PATHS.appAccessToken)).toBe(1);
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(30);
  });
});
