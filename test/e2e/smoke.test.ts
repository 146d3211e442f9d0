import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

describe('store app end to end (smoke)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('gets a ticket at startup, then installs a tenant and mints its token once', async () => {
    // Startup asked for a resend; the simulator pushed the ticket to our endpoint.
    await whenReady(stack);
    expect(stack.sim.count('/open-apis/auth/v3/app_ticket/resend')).toBe(1);

    const push = await stack.sim.appOpen(STORE_APP.appId, 'tenant-smoke-1');
    expect(push.status).toBe(200);
    const tenant = await waitFor(async () => {
      const res = await stack.api('GET', '/api/v1/tenants/tenant-smoke-1');
      const body = (await res.json()) as { token?: { status: string } };
      return res.status === 200 && body.token?.status === 'valid' ? body : undefined;
    }, 10_000, 'tenant with a valid token');
    expect(tenant).toMatchObject({ tenantKey: 'tenant-smoke-1', status: 'active', appType: 'store' });
    expect(stack.sim.count('/open-apis/auth/v3/app_access_token')).toBe(1);
    expect(stack.sim.count('/open-apis/auth/v3/tenant_access_token')).toBe(1);
  });
});
