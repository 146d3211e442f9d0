import { AUTH_PATHS, LarkSimulator } from '../../simulator/lark-simulator.js';
import { SimData, type DataApiOptions } from '../../simulator/data/index.js';

/** A started simulator with its data APIs, and raw-HTTP calls to them with a store app's tenant tokens. */
export interface DataClient {
  sim: LarkSimulator;
  data: SimData;
  /** A tenant token minted over HTTP the way a store app does (app_ticket -> app token -> tenant token). */
  tenantToken(tenantKey: string): Promise<string>;
  /** One call: the HTTP status and the parsed JSON body. */
  call<T = LarkBody>(token: string, method: HttpMethod, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface LarkBody {
  code: number;
  msg?: string;
  data?: Record<string, unknown>;
}

/** The store app the client mints tenant tokens for. */
export const DATA_APP = { appId: 'cli_sim_data_test', appSecret: 'sim-data-test-secret', kind: 'store' as const, verificationToken: 'vtok-sim-data' };

export async function startDataClient(tenants: string[], opts: DataApiOptions = {}): Promise<DataClient> {
  const sim = new LarkSimulator();
  sim.addApp(DATA_APP);
  for (const t of tenants) sim.installTenant(DATA_APP.appId, t);
  const data = new SimData(sim, opts);
  await sim.start();
  const ticket = sim.issueTicket(DATA_APP.appId);

  const call = async <T = LarkBody>(token: string, method: HttpMethod, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(sim.url + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  };
  const auth = async (path: string, body: unknown) => (await call<Record<string, unknown>>('', 'POST', path, body)).body;

  return {
    sim,
    data,
    call,
    async tenantToken(tenantKey) {
      const app = await auth(AUTH_PATHS.appAccessToken, { app_id: DATA_APP.appId, app_secret: DATA_APP.appSecret, app_ticket: ticket });
      const tenant = await auth(AUTH_PATHS.tenantAccessToken, { app_access_token: app.app_access_token, tenant_key: tenantKey });
      if (typeof tenant.tenant_access_token !== 'string') throw new Error(`no tenant token: ${JSON.stringify(tenant)}`);
      return tenant.tenant_access_token;
    },
    stop: () => sim.stop(),
  };
}
