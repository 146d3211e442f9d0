import { LarkTransportError } from './errors.js';
import type { LarkHttp } from './http.js';

/**
 * Lark's auth endpoints (auth.md), one plain function each over LarkHttp: no state, no storage,
 * no retries. Deciding when to call them, and keeping what they return, is the callers' (tokens/,
 * the app_ticket service, custom app registration).
 *
 * The user-token calls belong here too when they come: `POST /open-apis/authen/v2/oauth/token`
 * with the authorization_code and refresh_token grants (auth.md §5.2) and
 * `GET /open-apis/authen/v1/user_info` (§5.4). The v2 token endpoint answers RFC 6749 style
 * (`access_token`, `expires_in`, `refresh_token`, `refresh_token_expires_in`, `scope`, and
 * `error`/`error_description` on failure), and its `code` may be the string "0", which LarkHttp
 * does not accept as a Lark answer yet.
 */

/** The app whose credentials a call presents; the secret is opened only when a call sends it. */
export interface LarkAppAuth {
  appId: string;
  baseUrl: string;
  secret(): string;
}

/** An app or tenant access token as Lark issued it: `expire` is its lifetime left, in seconds (auth.md §4). */
export interface IssuedToken {
  token: string;
  expire: number;
}

/** The tenant a tenant token acts in (tenant/v2/tenant/query). */
export interface LarkTenant {
  tenantKey: string;
  name: string | null;
}

/** auth.md §3.3: the store app's app_access_token, from its latest pushed app_ticket. */
export async function mintStoreAppToken(http: LarkHttp, app: LarkAppAuth, ticket: string): Promise<IssuedToken> {
  const res = await http.call<{ app_access_token?: string; expire?: number }>(app.baseUrl, {
    method: 'POST',
    path: '/open-apis/auth/v3/app_access_token',
    body: { app_id: app.appId, app_secret: app.secret(), app_ticket: ticket },
  });
  return issued(res.body.app_access_token, res.body.expire, 'app_access_token');
}

/** auth.md §3.4: a tenant_access_token for a tenant that installed the store app. */
export async function mintStoreTenantToken(http: LarkHttp, baseUrl: string, appToken: string, tenantKey: string): Promise<IssuedToken> {
  const res = await http.call<{ tenant_access_token?: string; expire?: number }>(baseUrl, {
    method: 'POST',
    path: '/open-apis/auth/v3/tenant_access_token',
    body: { app_access_token: appToken, tenant_key: tenantKey },
  });
  return issued(res.body.tenant_access_token, res.body.expire, 'tenant_access_token');
}

/** auth.md §2.2: a custom app's own app_access_token. */
export async function mintInternalAppToken(http: LarkHttp, app: LarkAppAuth): Promise<IssuedToken> {
  const res = await http.call<{ app_access_token?: string; expire?: number }>(app.baseUrl, {
    method: 'POST',
    path: '/open-apis/auth/v3/app_access_token/internal',
    body: { app_id: app.appId, app_secret: app.secret() },
  });
  return issued(res.body.app_access_token, res.body.expire, 'app_access_token');
}

/** auth.md §2.1: a custom app's tenant_access_token (a custom app serves its own tenant only). */
export async function mintInternalTenantToken(http: LarkHttp, app: LarkAppAuth): Promise<IssuedToken> {
  const res = await http.call<{ tenant_access_token?: string; expire?: number }>(app.baseUrl, {
    method: 'POST',
    path: '/open-apis/auth/v3/tenant_access_token/internal',
    body: { app_id: app.appId, app_secret: app.secret() },
  });
  return issued(res.body.tenant_access_token, res.body.expire, 'tenant_access_token');
}

/** auth.md §3.2: asks Lark to push a fresh app_ticket; the ticket itself arrives as an event. */
export async function resendAppTicket(http: LarkHttp, app: LarkAppAuth): Promise<void> {
  await http.call(app.baseUrl, {
    method: 'POST',
    path: '/open-apis/auth/v3/app_ticket/resend',
    body: { app_id: app.appId, app_secret: app.secret() },
  });
}

/** The tenant a tenant token belongs to: how a custom app's registration learns its tenant_key. */
export async function queryTenant(http: LarkHttp, baseUrl: string, tenantToken: string): Promise<LarkTenant> {
  const res = await http.call<{ data?: { tenant?: { tenant_key?: string; name?: string } } }>(baseUrl, {
    method: 'GET',
    path: '/open-apis/tenant/v2/tenant/query',
    bearer: tenantToken,
  });
  const tenantKey = res.body.data?.tenant?.tenant_key;
  if (!tenantKey) throw new LarkTransportError('tenant/v2/tenant/query', 'answer lacked data.tenant.tenant_key');
  return { tenantKey, name: res.body.data?.tenant?.name ?? null };
}

function issued(token: string | undefined, expire: number | undefined, field: string): IssuedToken {
  // Some clients cached `undefined` when a body lacked the token (node-sdk #182); never do that.
  if (typeof token !== 'string' || token === '' || typeof expire !== 'number' || expire <= 0) {
    throw new LarkTransportError(field, `answer lacked ${field} or expire`);
  }
  return { token, expire };
}
