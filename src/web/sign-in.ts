import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { larkAccountsUrl } from '../config/lark-domain.js';
import { LarkApiError, LarkTransportError } from '../lark/errors.js';
import { isUserAdmin } from '../lark/user-auth-api.js';
import { challengeOf } from '../oauth/pkce.js';
import type { SignInPurpose } from '../oauth/oauth-states.js';
import type { Services } from '../services.js';
import type { WebUser } from './web-user.js';

export const CALLBACK_PATH = '/auth/lark/callback';
const LOGIN_PATH = '/auth/lark/login';

/** A page-local path: one slash, no scheme, no backslash (an open redirect otherwise). */
export const isLocalPath = (v: string) => /^\/(?![/\\])[^\s\\]*$/.test(v) && !v.includes('://') && v.length <= 500;

/** An app id as a query parameter may name one (`?app=` for a custom app's sign-in and admin page). */
export const isAppId = (v: unknown): v is string => typeof v === 'string' && /^cli_[A-Za-z0-9]{1,60}$/.test(v);

/** The scopes asked for: offline_access always (a refresh token), plus what the tenant's enabled modules read as a user. */
export async function scopesFor(services: Services, tenantKey: string | null): Promise<string[]> {
  const scopes = new Set(['offline_access']);
  if (tenantKey) {
    const enabled = await services.db.selectFrom('connectors').select('module').where('tenant_key', '=', tenantKey).where('enabled', '=', true).execute();
    for (const { module } of enabled) for (const s of services.connectors.module(module).userScopes ?? []) scopes.add(s);
  }
  return [...scopes];
}

export class SignInUnavailable extends Error {}

/**
 * The URL of Lark's authorize page for a new sign-in (auth.md §5.1): the app's client id, the
 * callback, the scopes, a single-use state and a PKCE S256 challenge.
 */
export async function signInUrl(
  services: Services,
  input: { appId: string; purpose: SignInPurpose; returnTo: string; tenantKey: string | null },
): Promise<string> {
  const base = services.config.publicUrl;
  if (!base) throw new SignInUnavailable('PUBLIC_URL is not set: larksync does not know the address browsers reach it at');
  const app = await services.grants.app(input.appId);
  if (!app) throw new SignInUnavailable(`the app ${input.appId} is not registered`);
  const redirectUri = `${base}${CALLBACK_PATH}`;
  const { state, verifier } = await services.oauthStates.start({
    appId: app.appId,
    purpose: input.purpose,
    redirectUri,
    returnTo: input.returnTo,
    tenantHint: input.tenantKey,
  });
  const url = new URL(`${larkAccountsUrl(app.domain)}/open-apis/authen/v1/authorize`);
  url.searchParams.set('client_id', app.appId);
  url.searchParams.set('redirect_uri', redirectUri);
  url.searchParams.set('scope', (await scopesFor(services, input.tenantKey)).join(' '));
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', challengeOf(verifier));
  url.searchParams.set('code_challenge_method', 'S256');
  return url.toString();
}

/** A page saying what went wrong and what to do; never a code, token or secret. */
export function messagePage(reply: FastifyReply, status: number, title: string, message: string, action?: { href: string; label: string }) {
  return reply.code(status).header('cache-control', 'no-store').view('message.eta', { title, message, action });
}

/** Whether the signed-in user may configure: the app's installer, or an app admin of the company. */
async function roleOf(services: Services, appId: string, tenantKey: string, openId: string): Promise<'admin' | 'viewer'> {
  const tenant = await services.tenants.get(tenantKey);
  if (tenant && (tenant.installer_open_id === openId || tenant.installer_employee_open_id === openId)) return 'admin';
  try {
    const tokens = await services.tokens.forTenant(tenantKey);
    const admin = await tokens.withToken((token, baseUrl) => isUserAdmin(services.http, baseUrl, token, openId));
    return admin ? 'admin' : 'viewer';
  } catch (err) {
    // The check failing (a scope not granted, Lark down) leaves the user a viewer: safe, and said.
    services.log.warn({ appId, tenantKey, err: (err as Error).message }, 'admin check failed; the user gets the read-only page');
    return 'viewer';
  }
}

export const signInRoutes =
  (services: Services): FastifyPluginAsync =>
  async (web) => {
    web.get<{ Querystring: { returnTo?: string; app?: string } }>(LOGIN_PATH, { schema: { hide: true } }, async (request, reply) => {
      const returnTo = typeof request.query.returnTo === 'string' && isLocalPath(request.query.returnTo) ? request.query.returnTo : '/admin';
      const appId = isAppId(request.query.app) ? request.query.app : services.config.storeApp?.appId;
      if (!appId) return messagePage(reply, 400, 'Which app?', 'No store app is configured; open this page with ?app=<your app id>.');
      try {
        return reply.redirect(await signInUrl(services, { appId, purpose: 'admin', returnTo, tenantKey: null }), 302);
      } catch (err) {
        if (err instanceof SignInUnavailable) return messagePage(reply, 503, 'Sign-in is not available', err.message);
        throw err;
      }
    });

    web.get('/auth/lark/done', { schema: { hide: true } }, async (_request, reply) =>
      messagePage(reply, 200, 'larksync is authorized', 'Your authorization is stored; larksync can now read what you allowed. You can close this window.'),
    );

    web.get<{ Querystring: Record<string, string | undefined> }>(CALLBACK_PATH, { schema: { hide: true } }, async (request, reply) => {
      const q = request.query;
      const again = { href: LOGIN_PATH, label: 'Sign in again' };
      const started = typeof q.state === 'string' ? await services.oauthStates.consume(q.state) : undefined;
      if (!started) {
        return messagePage(reply, 400, 'This sign-in link is no longer valid', 'It expired (after 10 minutes), was used already, or did not come from larksync. Start the sign-in again.', again);
      }
      if (q.error !== undefined || typeof q.code !== 'string' || !/^[A-Za-z0-9_-]{1,512}$/.test(q.code)) {
        const denied = q.error === 'access_denied';
        return messagePage(
          reply,
          denied ? 403 : 400,
          denied ? 'Sign-in declined' : 'Sign-in failed',
          denied ? 'You did not authorize larksync in Lark, so nothing was stored.' : 'Lark sent no usable authorization code back. Start the sign-in again.',
          again,
        );
      }
      const app = await services.grants.app(started.appId);
      if (!app) return messagePage(reply, 400, 'Sign-in failed', `The app ${started.appId} is no longer registered with larksync.`);
      let exchanged: Awaited<ReturnType<Services['grants']['exchange']>>;
      try {
        exchanged = await services.grants.exchange(app, { code: q.code, verifier: started.verifier, redirectUri: started.redirectUri });
      } catch (err) {
        // Lark's code, never its text or the authorization code itself.
        const code = err instanceof LarkApiError ? err.code : undefined;
        services.log.warn({ appId: app.appId, larkCode: code, transport: err instanceof LarkTransportError }, 'sign-in: the code exchange failed');
        if (err instanceof LarkApiError || err instanceof LarkTransportError) {
          return messagePage(
            reply,
            err instanceof LarkTransportError ? 502 : 400,
            'Sign-in failed',
            code ? `Lark refused the authorization (code ${code}): it may have expired, been used already, or belong to another app. Start again.` : 'Lark could not be reached. Try again in a moment.',
            again,
          );
        }
        throw err;
      }
      const { who } = exchanged;
      const tenant = await services.tenants.get(who.tenantKey);
      if (!tenant || tenant.app_id !== app.appId || tenant.status !== 'active') {
        services.log.warn({ appId: app.appId, tenantKey: who.tenantKey }, 'sign-in: the user belongs to a company this app does not serve; nothing stored');
        return messagePage(reply, 403, 'Your company does not use this app', 'The account you signed in with belongs to a company (tenant) that has not installed this app, or whose installation is paused. Nothing was stored.');
      }
      await exchanged.keep();
      if (started.purpose === 'grant') {
        return started.returnTo.startsWith('/') ? reply.redirect(started.returnTo, 302) : reply.redirect(started.returnTo, 302);
      }
      const user: WebUser = {
        appId: app.appId,
        tenantKey: who.tenantKey,
        openId: who.openId,
        name: who.name,
        role: await roleOf(services, app.appId, who.tenantKey, who.openId),
        signedInAt: new Date().toISOString(),
      };
      // A new session id at sign-in: one planted before it (session fixation) is worth nothing.
      await request.session.regenerate();
      request.session.set('user', user);
      return reply.redirect(started.returnTo, 302);
    });
  };
