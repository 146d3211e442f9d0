import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as lark from '@larksuiteoapi/node-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS, LarkSimulator } from '../../simulator/lark-simulator.js';
import { encryptPush } from '../../src/lark/event-crypto.js';

// The official SDK is the reference client: if it works against the simulator unchanged, the
// simulator speaks Lark's wire format, not just whatever larksync happens to send.

const STORE = { appId: 'cli_sdk_store_0001', appSecret: 'sdk-store-secret', verificationToken: 'vtok-sdk', encryptKey: 'sdk-encrypt-key-01' };
const CUSTOM = { appId: 'cli_sdk_custom_0001', appSecret: 'sdk-custom-secret', tenantKey: 'tk-sdk-custom', tenantName: 'SDK Custom Corp' };
const TENANT = 'tk-sdk-store';

const silent: lark.Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined, trace: () => undefined };

/** The SDK's Cache contract (absolute expiry in ms, keys may be symbols), in a Map that tests can look into. */
class InspectableCache implements lark.Cache {
  readonly entries = new Map<string, { value: unknown; expire: number | undefined }>();
  private id(key: string | Symbol, namespace = '') {
    return `${namespace}/${key.toString()}`;
  }
  set = async (key: string | Symbol, value: unknown, expire?: number, options?: { namespace?: string }) => {
    this.entries.set(this.id(key, options?.namespace), { value, expire });
    return true;
  };
  get = async (key: string | Symbol, options?: { namespace?: string }) => {
    const e = this.entries.get(this.id(key, options?.namespace));
    if (!e || (e.expire !== undefined && e.expire < Date.now())) return undefined;
    return e.value;
  };
}

interface TenantQueryBody {
  code: number;
  data?: { tenant?: { tenant_key?: string; name?: string } };
}

describe('the official node SDK against the simulator', () => {
  const sim = new LarkSimulator();

  beforeAll(async () => {
    sim.addApp({ ...STORE, kind: 'store' });
    sim.addApp({ ...CUSTOM, kind: 'custom', verificationToken: 'vtok-sdk-custom' });
    sim.installTenant(STORE.appId, TENANT);
    await sim.start();
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('ISV client with a preloaded app_ticket: app_access_token -> tenant_access_token -> API call', async () => {
    sim.resetCounts();
    const cache = new InspectableCache();
    await cache.set(lark.CAppTicket, sim.issueTicket(STORE.appId), undefined, { namespace: STORE.appId });
    const client = new lark.Client({
      appId: STORE.appId,
      appSecret: STORE.appSecret,
      appType: lark.AppType.ISV,
      domain: sim.url,
      cache,
      logger: silent,
    });

    const generic = await client.request<TenantQueryBody>({ method: 'GET', url: AUTH_PATHS.tenantQuery }, lark.withTenantKey(TENANT));
    expect(generic.code).toBe(0);
    expect(generic.data?.tenant?.tenant_key).toBe(TENANT);
    const typed = await client.tenant.v2.tenant.query({}, lark.withTenantKey(TENANT));
    expect(typed.code).toBe(0);
    expect(typed.data?.tenant?.tenant_key).toBe(TENANT);

    // A ticket was known at construction, so no resend; the tenant token was cached after the first call.
    expect(sim.count(AUTH_PATHS.ticketResend)).toBe(0);
    expect(sim.count(AUTH_PATHS.appAccessToken, 0)).toBe(1);
    expect(sim.count(AUTH_PATHS.tenantAccessToken, 0)).toBe(1);
    expect(sim.count(AUTH_PATHS.tenantQuery, 0)).toBe(2);
    // The SDK cached what the simulator issued, with its 3-minute safety margin off `expire`.
    const cached = [...cache.entries.entries()].find(([k]) => k.endsWith(`larkMarketAccessToken${TENANT}`));
    expect(cached).toBeDefined();
    expect(sim.validTenantTokens(STORE.appId, TENANT).includes(cached![1].value as string)).toBe(true);
    expect(cached![1].expire! - Date.now()).toBeGreaterThan((7200 - 180 - 5) * 1000);
  });

  it('ISV client whose ticket arrives as a push: the SDK verifies, decrypts and keeps the simulator ticket', async () => {
    sim.resetCounts();
    const cache = new InspectableCache();
    const dispatcher = new lark.EventDispatcher({ encryptKey: STORE.encryptKey, verificationToken: STORE.verificationToken, cache, logger: silent });
    const server: Server = createServer(lark.adaptDefault('/webhook', dispatcher));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      sim.setEventUrl(STORE.appId, `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`);
      // Constructing an ISV client without a ticket asks Lark to push one (the SDK's own behaviour).
      const client = new lark.Client({ appId: STORE.appId, appSecret: STORE.appSecret, appType: lark.AppType.ISV, domain: sim.url, cache, logger: silent });
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 5_000;
        const poll = async () => {
          if (await cache.get(lark.CAppTicket, { namespace: STORE.appId })) return resolve();
          if (Date.now() > deadline) return reject(new Error('the SDK never cached a pushed ticket'));
          setTimeout(poll, 20);
        };
        void poll();
      });
      await sim.settle();
      expect(sim.count(AUTH_PATHS.ticketResend, 0)).toBe(1);
      expect((await cache.get(lark.CAppTicket, { namespace: STORE.appId })) === sim.currentTicket(STORE.appId)).toBe(true);

      const res = await client.request<TenantQueryBody>({ method: 'GET', url: AUTH_PATHS.tenantQuery }, lark.withTenantKey(TENANT));
      expect(res.data?.tenant?.tenant_key).toBe(TENANT);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('SelfBuild client for a custom app: tenant_access_token/internal, then the API call', async () => {
    sim.resetCounts();
    const client = new lark.Client({
      appId: CUSTOM.appId,
      appSecret: CUSTOM.appSecret,
      appType: lark.AppType.SelfBuild,
      domain: sim.url,
      cache: new InspectableCache(),
      logger: silent,
    });
    const res = await client.tenant.v2.tenant.query();
    expect(res.code).toBe(0);
    expect(res.data?.tenant).toMatchObject({ tenant_key: CUSTOM.tenantKey, name: CUSTOM.tenantName });
    expect(sim.count(AUTH_PATHS.tenantAccessTokenInternal, 0)).toBe(1);
    expect(sim.count(AUTH_PATHS.appAccessToken) + sim.count(AUTH_PATHS.tenantAccessToken)).toBe(0);
  });

  it('SDK in bring-your-own-token mode sees token errors the way larksync expects them (code in the body)', async () => {
    const client = new lark.Client({
      appId: CUSTOM.appId,
      appSecret: 'unused-placeholder',
      appType: lark.AppType.SelfBuild,
      domain: sim.url,
      disableTokenCache: true,
      logger: silent,
    });
    // HTTP 400: axios throws, the Lark code rides on response.data.
    const err = (await client.tenant.v2.tenant.query({}, lark.withTenantToken('t-not-a-real-token')).catch((e: unknown) => e)) as {
      response?: { status: number; data: { code: number } };
    };
    expect(err.response?.status).toBe(400);
    expect(err.response?.data.code).toBe(99991663);
  });

  it("AESCipher decrypts what the simulator encrypts (its wire format and larksync's encryptPush)", () => {
    const plaintext = JSON.stringify({ schema: '2.0', header: { event_id: 'ev-1', event_type: 'x' }, event: { text: 'héllo ✓' } });
    const wire = sim.wireFormat(STORE.appId, plaintext);
    const { encrypt } = JSON.parse(wire.body) as { encrypt: string };
    expect(new lark.AESCipher(STORE.encryptKey).decrypt(encrypt)).toBe(plaintext);
    expect(new lark.AESCipher('another key').decrypt(encryptPush('another key', plaintext))).toBe(plaintext);
  });
});
