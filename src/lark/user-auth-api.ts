import type { LarkHttp } from './http.js';

/**
 * Lark's user authorization calls (auth.md §5, user-oauth.md): the v2 token endpoint for the code
 * and refresh grants, user_info, and the admin check. Plain functions over LarkHttp; the callers
 * hold the sealing, the locking and the policy.
 */

export interface UserTokens {
  accessToken: string;
  /** seconds; not fixed (auth.md §5.2): read from each answer */
  expiresIn: number;
  /** absent when the user did not grant offline_access */
  refreshToken: string | undefined;
  refreshExpiresIn: number | undefined;
  scopes: string[];
}

export interface LarkUserInfo {
  openId: string;
  unionId: string | null;
  userId: string | null;
  tenantKey: string;
  name: string | null;
}

interface TokenAnswer {
  access_token?: unknown;
  expires_in?: unknown;
  refresh_token?: unknown;
  refresh_token_expires_in?: unknown;
  scope?: unknown;
}

const TOKEN_PATH = '/open-apis/authen/v2/oauth/token';
const num = (v: unknown, fallback: number) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fallback);

function tokensOf(body: TokenAnswer): UserTokens {
  if (typeof body.access_token !== 'string' || body.access_token === '') throw new Error('Lark answered the token call without an access_token');
  return {
    accessToken: body.access_token,
    // Unknown lifetimes are read as the documented examples (2 h, 7 days).
    expiresIn: num(body.expires_in, 7200),
    refreshToken: typeof body.refresh_token === 'string' && body.refresh_token !== '' ? body.refresh_token : undefined,
    refreshExpiresIn: typeof body.refresh_token === 'string' ? num(body.refresh_token_expires_in, 604_800) : undefined,
    scopes: typeof body.scope === 'string' ? body.scope.split(' ').filter(Boolean) : [],
  };
}

export interface AppSecretRef {
  appId: string;
  baseUrl: string;
  secret(): string;
}

/** The authorization-code grant, with the PKCE verifier and the redirect URI of the authorize call. */
export async function exchangeCode(http: LarkHttp, app: AppSecretRef, input: { code: string; verifier: string; redirectUri: string }): Promise<UserTokens> {
  const res = await http.call<TokenAnswer>(app.baseUrl, {
    method: 'POST',
    path: TOKEN_PATH,
    endpoint: `${TOKEN_PATH}#authorization_code`,
    oauth: true,
    body: {
      grant_type: 'authorization_code',
      client_id: app.appId,
      client_secret: app.secret(),
      code: input.code,
      redirect_uri: input.redirectUri,
      code_verifier: input.verifier,
    },
  });
  return tokensOf(res.body);
}

/**
 * The refresh grant. The refresh token sent is dead once Lark answers (single use): the new one
 * must be stored before anything else happens (user-oauth.md §7).
 */
export async function refreshUserToken(http: LarkHttp, app: AppSecretRef, refreshToken: string): Promise<UserTokens> {
  const res = await http.call<TokenAnswer>(app.baseUrl, {
    method: 'POST',
    path: TOKEN_PATH,
    endpoint: `${TOKEN_PATH}#refresh_token`,
    oauth: true,
    body: { grant_type: 'refresh_token', client_id: app.appId, client_secret: app.secret(), refresh_token: refreshToken },
  });
  return tokensOf(res.body);
}

/** Who a user token belongs to (auth.md §5.4). */
export async function userInfo(http: LarkHttp, baseUrl: string, accessToken: string): Promise<LarkUserInfo> {
  const res = await http.call<{ data?: Record<string, unknown> }>(baseUrl, {
    method: 'GET',
    path: '/open-apis/authen/v1/user_info',
    bearer: accessToken,
  });
  const d = res.body.data ?? {};
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  const openId = str(d.open_id);
  const tenantKey = str(d.tenant_key);
  if (!openId || !tenantKey) throw new Error('Lark answered user_info without open_id or tenant_key');
  return { openId, tenantKey, unionId: str(d.union_id), userId: str(d.user_id), name: str(d.name) ?? str(d.en_name) };
}

/**
 * Whether the user administers apps in their company (user-oauth.md: is_user_admin), asked with
 * that company's tenant token.
 */
export async function isUserAdmin(http: LarkHttp, baseUrl: string, tenantToken: string, openId: string): Promise<boolean> {
  const res = await http.call<{ data?: { is_app_admin?: unknown } }>(baseUrl, {
    method: 'GET',
    path: '/open-apis/application/v3/is_user_admin',
    query: { open_id: openId },
    bearer: tenantToken,
  });
  return res.body.data?.is_app_admin === true;
}
