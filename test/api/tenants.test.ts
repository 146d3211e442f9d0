import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

interface TenantJson {
  tenantKey: string;
  appId: string;
  appType: string;
  status: string;
  statusReason: string | null;
  name: string | null;
  installer: string | null;
  installerEmployee: string | null;
  applicants: string[];
  installedAt: string;
  statusChangedAt: string;
  uninstalledAt: string | null;
  token: {
    status: string;
    expiresAt: string | null;
    refreshAt: string | null;
    mintedAt: string | null;
    mintCount: number;
    failures: number;
    nextAttemptAt: string | null;
    lastError: unknown;
  };
  lifecycle: Array<{ action: string; at: string; eventId: string | null }>;
}
interface ListJson {
  tenants: Array<{ tenantKey: string; appId: string; status: string; name: string | null; installedAt: string; statusChangedAt: string }>;
  nextCursor: string | null;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('GET /api/v1/tenants and /api/v1/tenants/{tenantKey}', () => {
  let stack: Stack;

  async function getTenant(key: string): Promise<{ status: number; text: string; body: TenantJson }> {
    const res = await stack.api('GET', `/api/v1/tenants/${encodeURIComponent(key)}`);
    const text = await res.text();
    return { status: res.status, text, body: JSON.parse(text) as TenantJson };
  }
  const tenantWhere = (key: string, ok: (t: TenantJson) => boolean, label: string) =>
    waitFor(async () => {
      const { status, body } = await getTenant(key);
      return status === 200 && ok(body) ? body : undefined;
    }, 10_000, label);
  async function list(query: string): Promise<ListJson> {
    const res = await stack.api('GET', `/api/v1/tenants${query}`);
    expect(res.status).toBe(200);
    return (await res.json()) as ListJson;
  }

  beforeAll(async () => {
    stack = await startStack();
    await whenReady(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('shows an installed store tenant with install facts and token health, never the token', async () => {
    const push = await stack.sim.appOpen(STORE_APP.appId, 'tenant-active');
    expect(push.status).toBe(200);
    const t = await tenantWhere('tenant-active', (b) => b.token.status === 'valid', 'a valid token');
    expect(t).toEqual({
      tenantKey: 'tenant-active',
      appId: STORE_APP.appId,
      appType: 'store',
      status: 'active',
      statusReason: 'installed',
      name: null,
      installer: 'ou_admin_tenant-active',
      installerEmployee: null,
      applicants: ['ou_applicant_tenant-active'],
      installedAt: expect.stringMatching(ISO),
      statusChangedAt: expect.stringMatching(ISO),
      uninstalledAt: null,
      token: {
        status: 'valid',
        expiresAt: expect.stringMatching(ISO),
        refreshAt: expect.stringMatching(ISO),
        mintedAt: expect.stringMatching(ISO),
        mintCount: 1,
        failures: 0,
        nextAttemptAt: null,
        lastError: null,
      },
      lifecycle: [{ action: 'installed', at: expect.stringMatching(ISO), eventId: push.uuid, appId: STORE_APP.appId }],
    });
    // Lark issues 2 h tokens; we refresh 25 min before expiry.
    const lifetime = Date.parse(t.token.expiresAt ?? '') - Date.parse(t.token.mintedAt ?? '');
    expect(lifetime).toBeGreaterThan(7_100_000);
    expect(Date.parse(t.token.refreshAt ?? '')).toBeLessThan(Date.parse(t.token.expiresAt ?? ''));

    const tokens = stack.sim.validTenantTokens(STORE_APP.appId, 'tenant-active');
    expect(tokens).toHaveLength(1);
    const { text } = await getTenant('tenant-active');
    for (const value of tokens) expect(text).not.toContain(value);
    // Reading the tenant costs Lark nothing.
    expect(stack.sim.count('/open-apis/auth/v3/tenant_access_token')).toBe(1);
  });

  it('follows the lifecycle: paused, then uninstalled, and stays readable after the uninstall', async () => {
    await stack.sim.appOpen(STORE_APP.appId, 'tenant-life');
    await tenantWhere('tenant-life', (b) => b.token.status === 'valid', 'installed');

    await stack.sim.appStatusChange(STORE_APP.appId, 'tenant-life', 'stop_by_tenant');
    const paused = await tenantWhere('tenant-life', (b) => b.status === 'paused', 'paused');
    expect(paused.statusReason).toBe('stop_by_tenant');
    expect(paused.lifecycle.map((l) => l.action)).toEqual(['paused', 'installed']);

    await stack.sim.appUninstalled(STORE_APP.appId, 'tenant-life');
    // The handler marks the tenant, then purges its token (two steps): wait for both.
    const gone = await tenantWhere('tenant-life', (b) => b.status === 'uninstalled' && b.token.status === 'missing', 'uninstalled');
    expect(gone).toMatchObject({
      tenantKey: 'tenant-life',
      status: 'uninstalled',
      statusReason: 'app_uninstalled',
      uninstalledAt: expect.stringMatching(ISO),
      installer: 'ou_admin_tenant-life',
      // The uninstall purged the token; only its history remains.
      token: { status: 'missing', expiresAt: null, refreshAt: null, mintCount: 0 },
    });
    expect(gone.lifecycle.map((l) => l.action)).toEqual(['uninstalled', 'paused', 'installed']);
    const row = await stack.db.db.selectFrom('tenants').selectAll().where('tenant_key', '=', 'tenant-life').executeTakeFirstOrThrow();
    expect(row.status).toBe('uninstalled');
  });

  it('shows a token whose refresh keeps failing as failing, with the error class and the backoff, still never the token', async () => {
    await stack.sim.appOpen(STORE_APP.appId, 'tenant-failing');
    await tenantWhere('tenant-failing', (b) => b.token.status === 'valid', 'installed');
    const stored = stack.sim.validTenantTokens(STORE_APP.appId, 'tenant-failing');
    // Lark stops minting for this tenant (10013), and the token is past its refresh point.
    stack.sim.injectFault({ path: '/open-apis/auth/v3/tenant_access_token', status: 400, code: 10013, msg: 'get tenant access token fail', count: 10 });
    await stack.db.db
      .updateTable('access_tokens')
      .set({ refresh_at: new Date(Date.now() - 1_000) })
      .where('kind', '=', 'tenant')
      .where('tenant_key', '=', 'tenant-failing')
      .execute();
    const tokens = stack.larksync.services.tokens;
    // Both calls get the stored token (still valid for hours) although the refresh failed twice.
    // They read the row, as every call does once the refresh time has passed (the process holds a
    // token until then): here the row's refresh time was moved, not the process's clock.
    const again = () => tokens.getTenantAccessToken('tenant-failing', { reread: true });
    expect([await again(), await again()]).toEqual([stored[0], stored[0]]);

    const { text, body } = await getTenant('tenant-failing');
    expect(body.token).toEqual({
      status: 'failing',
      expiresAt: expect.stringMatching(ISO),
      refreshAt: expect.stringMatching(ISO),
      mintedAt: expect.stringMatching(ISO),
      mintCount: 1,
      failures: 2,
      nextAttemptAt: expect.stringMatching(ISO),
      lastError: {
        code: '10013',
        class: 'app_not_available',
        message: expect.stringContaining('10013'),
        at: expect.stringMatching(ISO),
      },
    });
    for (const value of stack.sim.validTenantTokens(STORE_APP.appId, 'tenant-failing')) expect(text).not.toContain(value);
    stack.sim.clearFaults();
  });

  it('answers 404 tenant_not_found for a tenant it never saw', async () => {
    const res = await stack.api('GET', '/api/v1/tenants/tenant-never-seen');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { code: 'tenant_not_found', message: expect.stringContaining('tenant-never-seen') },
    });
  });

  it('lists tenants in key order, one keyset page at a time, without gaps or repeats', async () => {
    for (const key of ['page-05', 'page-03', 'page-01', 'page-04', 'page-02']) {
      await stack.larksync.services.tenants.install({ tenantKey: key, appId: STORE_APP.appId, name: `Name ${key}` }, null);
    }
    const all = (await stack.db.db.selectFrom('tenants').select('tenant_key').orderBy('tenant_key').execute()).map((r) => r.tenant_key);
    expect(all.length).toBeGreaterThanOrEqual(7);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    let insertedMidway = false;
    do {
      const page: ListJson = await list(`?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      pages += 1;
      expect(page.tenants.length).toBeLessThanOrEqual(2);
      if (page.nextCursor) expect(page.nextCursor).toBe(page.tenants.at(-1)?.tenantKey);
      seen.push(...page.tenants.map((t) => t.tenantKey));
      cursor = page.nextCursor;
      if (!insertedMidway) {
        // A tenant arriving behind the cursor neither shifts nor repeats later pages.
        await stack.larksync.services.tenants.install({ tenantKey: 'a-early-arrival', appId: STORE_APP.appId }, null);
        insertedMidway = true;
      }
    } while (cursor);
    expect(seen).toEqual(all);
    expect(pages).toBe(Math.ceil(all.length / 2));

    const summary = (await list('?limit=500')).tenants.find((t) => t.tenantKey === 'page-03');
    expect(summary).toEqual({
      tenantKey: 'page-03',
      appId: STORE_APP.appId,
      status: 'active',
      name: 'Name page-03',
      installedAt: expect.stringMatching(ISO),
      statusChangedAt: expect.stringMatching(ISO),
    });
  });

  it('filters by status, ends with nextCursor null, and returns an empty page past the end', async () => {
    const uninstalled = await list('?status=uninstalled');
    expect(uninstalled.tenants.map((t) => t.tenantKey)).toEqual(['tenant-life']);
    expect(uninstalled.nextCursor).toBeNull();

    const active = await list('?status=active&limit=1');
    expect(active.tenants).toHaveLength(1);
    expect(active.tenants[0]?.status).toBe('active');
    expect(active.nextCursor).toBe(active.tenants[0]?.tenantKey);

    const everything = await list('');
    const count = everything.tenants.length;
    expect(everything.nextCursor).toBeNull();
    // Exactly `limit` left: no cursor to a page that would be empty.
    expect((await list(`?limit=${count}`)).nextCursor).toBeNull();
    expect(await list('?cursor=zzzz')).toEqual({ tenants: [], nextCursor: null });
  });

  it('sends the default rate-limit budget (1200 per minute) on API answers', async () => {
    const res = await stack.api('GET', '/api/v1/tenants?limit=1');
    expect(res.headers.get('x-ratelimit-limit')).toBe('1200');
  });
});
