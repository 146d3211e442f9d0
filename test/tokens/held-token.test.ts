import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { LarkApiError } from '../../src/lark/errors.js';
import type { Services } from '../../src/services.js';
import { countingServices, fp, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';
import { waitFor } from '../helpers/wait.js';

// Every Lark call asks for its tenant's token. A process holds a token it read until the token's
// refresh time (at most a minute) instead of reading and opening its row for each call; the row
// stays the truth for minting (once across processes), for refreshing, and after Lark rejects one.
// Lark's 2 h lifetime and 30 min rotation window are scaled down to 6 s and 3 s.
const TENANT = 'tk-held';

describe('a tenant token held by the process', () => {
  let f: TokenFixture;
  let services: Services;
  let reads: string[];

  beforeAll(async () => {
    f = await startTokenFixture({ sim: { tokenTtlSeconds: 6, rotationWindowSeconds: 3 } });
    await f.seedTicket();
    await f.installTenant(TENANT);
    ({ services, seen: reads } = countingServices(f, /from "access_tokens"/));
  });
  afterAll(async () => {
    await f?.stop();
  });

  const refreshAt = async () =>
    (await sql<{ at: Date }>`select refresh_at as at from access_tokens where kind = 'tenant' and tenant_key = ${TENANT}`.execute(f.db.db)).rows[0]!.at.getTime();

  it('is held from its mint for many calls, and read (and minted again) once its refresh time has passed', async () => {
    const minted = await services.tokens.getTenantAccessToken(TENANT);
    reads.length = 0;
    for (let i = 0; i < 5; i += 1) expect(fp(await services.tokens.getTenantAccessToken(TENANT))).toBe(fp(minted));
    // Held from its mint: not one read.
    expect(reads).toHaveLength(0);
    const wait = Math.max(0, (await refreshAt()) - Date.now()) + 50;
    await new Promise((r) => setTimeout(r, wait));
    // Past it, the call reads the row and asks Lark (which may hand back the same token while
    // the rotation window has not quite begun by its own clock).
    const mints = f.sim.count(AUTH_PATHS.tenantAccessToken, 0);
    const next = await services.tokens.getTenantAccessToken(TENANT);
    expect(reads.length).toBeGreaterThan(0);
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken, 0)).toBe(mints + 1);
    expect(f.sim.validTenantTokens(f.appId, TENANT).map(fp)).toContain(fp(next));
  });

  it('is dropped when Lark rejects it: the retry reads the row and mints a new token, which is then held', async () => {
    const held = await services.tokens.getTenantAccessToken(TENANT);
    f.sim.revokeToken(held);
    const used: string[] = [];
    const answer = await services.tokens.withTenantToken(TENANT, async (token) => {
      used.push(fp(token));
      if (!f.sim.validTenantTokens(f.appId, TENANT).includes(token)) throw new LarkApiError('/open-apis/test', 99991663, 'invalid access token', 400, undefined, undefined);
      return 'ok';
    });
    expect(answer).toBe('ok');
    expect(used).toHaveLength(2);
    expect(used[0]).toBe(fp(held));
    expect(used[1]).not.toBe(fp(held));
    reads.length = 0;
    for (let i = 0; i < 3; i += 1) expect(fp(await services.tokens.getTenantAccessToken(TENANT))).toBe(used[1]);
    expect(reads).toHaveLength(0);
  });

  it('does not stand in for a due row in the refresh cron, which reads the row and mints', async () => {
    await services.tokens.getTenantAccessToken(TENANT);
    const before = f.sim.count(AUTH_PATHS.tenantAccessToken, 0);
    // Due by the database's clock while this process still holds the token (its own clock says fresh).
    await sql`update access_tokens set refresh_at = now() - interval '1 second' where kind = 'tenant' and tenant_key = ${TENANT}`.execute(f.db.db);
    await waitFor(async () => (await services.tokens.refreshDue()).refreshed >= 1, 5_000, 'the due tenant token refreshed');
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken, 0)).toBeGreaterThan(before);
  });
});
