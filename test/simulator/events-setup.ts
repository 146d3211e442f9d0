import { AUTH_PATHS, LarkSimulator, type SimApp } from '../../simulator/lark-simulator.js';
import { SimData, type DataApiOptions } from '../../simulator/data/index.js';
import type { EventDeliveryOptions } from '../../simulator/events/index.js';
import { EventReceiver } from './event-receiver.js';

/** A started simulator with SimData, apps whose request URLs point at an EventReceiver, and raw HTTP calls. */
export interface EventsSim {
  sim: LarkSimulator;
  data: SimData;
  receiver: EventReceiver;
  /** A tenant token minted over HTTP (store: ticket → app token → tenant token; custom: /internal). */
  tenantToken(appId: string, tenantKey: string): Promise<string>;
  call(token: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: LarkBody }>;
  stop(): Promise<void>;
}

export interface LarkBody {
  code: number;
  msg?: string;
  data?: Record<string, any>;
}

export type TestApp = Pick<SimApp, 'appId' | 'kind'> & Partial<SimApp>;

/** Retries 30–120 ms apart instead of 15 s – 6 h. */
export const FAST_RETRIES: Partial<EventDeliveryOptions> = { retryDelaysMs: [30, 60, 90, 120] };

export async function startEventsSim(
  apps: TestApp[],
  installs: Array<[appId: string, tenantKey: string]>,
  opts: { events?: Partial<EventDeliveryOptions>; data?: DataApiOptions } = {},
): Promise<EventsSim> {
  const full: SimApp[] = apps.map((a) => ({ appSecret: `${a.appId}-secret`, verificationToken: `vtok-${a.appId}`, ...a }));
  const receiver = await new EventReceiver(Object.fromEntries(full.map((a) => [a.appId, a.encryptKey]))).start();
  const sim = new LarkSimulator({ events: { ...FAST_RETRIES, ...opts.events } });
  for (const a of full) sim.addApp({ ...a, eventUrl: a.eventUrl ?? receiver.url(a.appId) });
  for (const [appId, tenantKey] of installs) sim.installTenant(appId, tenantKey);
  const data = new SimData(sim, { enforceRateLimits: false, ...opts.data });
  await sim.start();

  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(sim.url + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as LarkBody };
  };
  const auth = async (path: string, body: unknown) => (await call('', 'POST', path, body)).body as unknown as Record<string, unknown>;

  return {
    sim,
    data,
    receiver,
    call,
    async tenantToken(appId, tenantKey) {
      const app = sim.getApp(appId);
      let tenant: Record<string, unknown>;
      if (app.kind === 'custom') {
        tenant = await auth(AUTH_PATHS.tenantAccessTokenInternal, { app_id: appId, app_secret: app.appSecret });
      } else {
        const ticket = sim.currentTicket(appId) ?? sim.issueTicket(appId);
        const appToken = await auth(AUTH_PATHS.appAccessToken, { app_id: appId, app_secret: app.appSecret, app_ticket: ticket });
        tenant = await auth(AUTH_PATHS.tenantAccessToken, { app_access_token: appToken.app_access_token, tenant_key: tenantKey });
      }
      if (typeof tenant.tenant_access_token !== 'string') throw new Error(`no tenant token: ${JSON.stringify(tenant)}`);
      return tenant.tenant_access_token;
    },
    async stop() {
      await sim.stop();
      await receiver.stop();
    },
  };
}
