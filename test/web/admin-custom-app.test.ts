import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack, whenReady } from '../helpers/stack.js';
import { fetchPage, signInAs, textOf } from '../helpers/web-session.js';

// A custom app's company admin sets the app's event Request URL in its own console: the admin page
// says which URL, once the app's Verification Token is registered, and says events are off before.
const CUSTOM = {
  appId: 'cli_a7c0ffee01custom',
  appSecret: 'admin-custom-secret-never-shown',
  tenantKey: 'tenant-admin-custom',
  tenantName: 'Own App Admin Co',
  verificationToken: 'vt-admin-custom-never-shown',
  encryptKey: 'ek-admin-custom-never-shown',
};

describe('the admin page of a custom-app tenant', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
    await whenReady(stack);
    stack.sim.addApp({ ...CUSTOM, kind: 'custom', redirectUris: [`${stack.larksync.url}/auth/lark/callback`] });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const register = async (extra: Record<string, string>) => {
    const res = await stack.api('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret, domain: stack.sim.url, ...extra });
    expect(res.status).toBe(201);
  };

  it('says change events are off until the Verification Token is registered, then shows the Request URL; never a credential', async () => {
    await register({});
    const admin = stack.sim.addUser(CUSTOM.tenantKey, { name: 'Cora Custom', admin: true });
    const { cookie } = await signInAs(stack, admin, { app: CUSTOM.appId });
    const before = await fetchPage(stack, `/admin?app=${CUSTOM.appId}`, { cookie });
    expect(before.status).toBe(200);
    expect(textOf(before.body)).toMatch(/Change events off: your app's Verification Token is not registered/);
    expect(before.body).not.toContain('/lark/events/');

    await register({ verificationToken: CUSTOM.verificationToken, encryptKey: CUSTOM.encryptKey });
    const after = await fetchPage(stack, `/admin?app=${CUSTOM.appId}`, { cookie });
    // PUBLIC_URL (here larksync's own address) and the app's path.
    expect(after.body).toContain(`<code id="events-url">${stack.larksync.url}/lark/events/${CUSTOM.appId}</code>`);
    for (const secret of [CUSTOM.appSecret, CUSTOM.verificationToken, CUSTOM.encryptKey]) expect(after.body).not.toContain(secret);
  });
});
