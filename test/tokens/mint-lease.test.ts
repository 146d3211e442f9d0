import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { spawnCaller } from '../helpers/caller-process.js';
import { fp, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A mint is claimed with a short lease on the token's row, then Lark is called, then the token is
 * stored: no database transaction (nor pool connection) is held across the HTTP call, and a
 * process that dies mid-mint holds the others up only until its lease lapses.
 */
describe('token mints claim a lease instead of holding a transaction across the Lark call', () => {
  let f: TokenFixture | undefined;
  afterEach(async () => {
    await f?.stop();
    f = undefined;
  });

  const leaseOf = (fx: TokenFixture, tenantKey: string) =>
    fx.db.db
      .selectFrom('access_tokens')
      .select(['minting_until', 'mint_lease', 'token_sealed'])
      .where('kind', '=', 'tenant')
      .where('tenant_key', '=', tenantKey)
      .executeTakeFirst();

  it('keeps no transaction open while Lark answers slowly, and clears its claim once the token is stored', async () => {
    f = await startTokenFixture();
    await f.seedTicket();
    await f.installTenant('tk-lease-slow');
    await f.services.tokens.getAppAccessToken(f.appId);
    f.sim.injectFault({ path: AUTH_PATHS.tenantAccessToken, delayMs: 1_000 });

    const pending = f.services.tokens.getTenantAccessToken('tk-lease-slow');
    // Well inside the second Lark takes to answer.
    await new Promise((r) => setTimeout(r, 400));
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(0);
    // Lark has not answered yet: nothing of ours may sit in a transaction meanwhile. Client
    // backends only: an autovacuum worker analysing this database has a transaction of its own
    // (seen once in CI: "autovacuum: ANALYZE pg_catalog.pg_class").
    const open = await sql<{ state: string; query: string }>`
      select state, left(query, 80) as query from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null
         and backend_type = 'client backend'`.execute(f.db.db);
    expect(open.rows).toEqual([]);
    // What keeps other processes from minting meanwhile is the claim on the row.
    expect((await leaseOf(f, 'tk-lease-slow'))?.minting_until).toBeInstanceOf(Date);

    const token = await pending;
    expect(f.sim.validTenantTokens(f.appId, 'tk-lease-slow').map(fp)).toEqual([fp(token)]);
    expect(await leaseOf(f, 'tk-lease-slow')).toMatchObject({ minting_until: null, mint_lease: null });
  });

  it('a process SIGKILLed mid-mint holds up the others only until its lease lapses; then exactly one more mint', async () => {
    f = await startTokenFixture();
    await f.seedTicket();
    await f.installTenant('tk-lease-kill');
    const leaseMs = 1_500;
    // The app token is stored already, so the other process goes straight from its claim to Lark.
    await f.services.tokens.getAppAccessToken(f.appId);
    // The first tenant mint (the doomed process's) is answered only after 10 s.
    f.sim.injectFault({ path: AUTH_PATHS.tenantAccessToken, delayMs: 10_000 });
    const caller = spawnCaller('test/helpers/token-caller.ts', {
      ...f.env,
      TENANT_KEY: 'tk-lease-kill',
      CALLS: '1',
      POOL_MAX: '2',
      MINT_LEASE_MS: String(leaseMs),
    });
    await caller.ready;
    caller.start(Date.now());
    const fx = f;
    await waitFor(async () => (await leaseOf(fx, 'tk-lease-kill'))?.minting_until, 10_000, 'the other process`s claim');
    // Its call reaches Lark (and takes the slow answer) within moments of the claim.
    await new Promise((r) => setTimeout(r, 500));
    await caller.kill('SIGKILL');
    const killedAt = Date.now();

    const token = await f.services.tokens.getTenantAccessToken('tk-lease-kill');
    const waited = Date.now() - killedAt;
    // Not before the lease lapsed (it held us up: one mint at a time), and not much after: not
    // the 10 s the dead call would have taken.
    expect(waited).toBeGreaterThan(300);
    expect(waited).toBeLessThan(leaseMs + 1_500);
    const row = await f.db.db
      .selectFrom('access_tokens')
      .select(['mint_count', 'minting_until'])
      .where('kind', '=', 'tenant')
      .where('tenant_key', '=', 'tk-lease-kill')
      .executeTakeFirstOrThrow();
    expect(row).toEqual({ mint_count: 1, minting_until: null });
    // Ours is the one answered mint (the dead process's call is still parked in the simulator).
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken, 0)).toBe(1);
    expect(f.sim.validTenantTokens(f.appId, 'tk-lease-kill').map(fp)).toContain(fp(token));
  }, 30_000);
});
