import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { challengeOf, newVerifier } from '../../src/oauth/pkce.js';
import { STORE_APP, startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { runToEnd } from '../helpers/runs.js';

const TENANT = 'tenant-as-user';

describe('a connector reads as a signed-in user (identity { user })', () => {
  let stack: Stack;
  let reader: string;
  let outsider: string;

  /** A grant stored the way the sign-in callback stores it. */
  async function signIn(openId: string): Promise<void> {
    const redirect = `${stack.larksync.url}/auth/lark/callback`;
    const verifier = newVerifier();
    const back = new URL(
      stack.sim.authorizeAs(STORE_APP.appId, { openId, tenantKey: TENANT }, { redirect_uri: redirect, scope: 'offline_access bitable:app:readonly', state: 's', code_challenge: challengeOf(verifier), code_challenge_method: 'S256' }),
    );
    const app = (await stack.larksync.services.grants.app(STORE_APP.appId))!;
    await (await stack.larksync.services.grants.exchange(app, { code: back.searchParams.get('code')!, verifier, redirectUri: redirect })).keep();
  }

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    stack.data.bitable(TENANT, { projects: 300, ledger: 0 });
    await openTenant(stack, TENANT);
    reader = stack.sim.addUser(TENANT, { name: 'Rhea Reader' }).openId;
    outsider = stack.sim.addUser(TENANT, { name: 'Otto Outsider' }).openId;
    // A Base only its named readers may open: the app was never added to it.
    const { appToken, projects } = stack.data.bitable(TENANT).refs.main;
    stack.data.bitable(TENANT).table(appToken, projects).readers = new Set([reader]);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const configure = (identity?: { user: string }) => {
    const { appToken, projects } = stack.data.bitable(TENANT).refs.main;
    return stack.larksync.services.connectors.put(TENANT, 'base', { enabled: true, config: { tables: [{ appToken, tableId: projects }], ...(identity ? { identity } : {}) } }, 'store');
  };

  it('reads what only that user may see, with the user token, and the app cannot', async () => {
    await configure();
    const asApp = await runToEnd(stack, TENANT, 'base', 'full');
    expect(asApp.status).toBe('failed');
    expect(asApp.error_class).toBe('permission_denied');

    await signIn(reader);
    await configure({ user: reader });
    const asUser = await runToEnd(stack, TENANT, 'base', 'full');
    expect(asUser.status, asUser.error_message ?? '').toBe('succeeded');
    const rows = await sql<{ n: number }>`select count(*)::int as n from base_records where tenant_key = ${TENANT} and deleted_at is null`.execute(stack.db.db);
    expect(rows.rows[0]?.n).toBe(300);
  });

  it('another user who may not open the Base gets the same refusal as the app', async () => {
    await signIn(outsider);
    await configure({ user: outsider });
    const run = await runToEnd(stack, TENANT, 'base', 'full');
    expect(run.status).toBe('failed');
    expect(run.error_class).toBe('permission_denied');
  });

  it('a grant that needs re-authorization fails the run with user_authorization_required, naming who must sign in', async () => {
    await configure({ user: reader });
    await stack.sim.revokeUserTokens(STORE_APP.appId, reader, { push: false, tenantKey: TENANT });
    await sql`update user_grants set refresh_at = now() where open_id = ${reader}`.execute(stack.db.db);
    const run = await runToEnd(stack, TENANT, 'base', 'full');
    expect(run.status).toBe('failed');
    expect(run.error_class).toBe('user_authorization_required');
    expect(run.error_message).toMatch(/Rhea Reader .*must sign in to larksync again/);
    // And a user who never signed in.
    await configure({ user: 'ou_nobody_signed_in' });
    const never = await runToEnd(stack, TENANT, 'base', 'full');
    expect(never.error_class).toBe('user_authorization_required');
    expect(never.error_message).toMatch(/never authorized/);
  });
});
