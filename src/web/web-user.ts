/** A signed-in session lasts this long from the sign-in (the admin page's own sign-in, not Lark's tokens). */
export const SESSION_TTL_MS = 12 * 3_600_000;

/** The session cookie's name. */
export const SESSION_COOKIE = 'larksync_session';

/**
 * Who is signed in to the admin page, as the sign-in established it: the tenant comes from the
 * user's own Lark token, never from a URL or a form field, so a user sees only their company.
 */
export interface WebUser {
  appId: string;
  tenantKey: string;
  openId: string;
  name: string | null;
  /** admin: the app's installer or an app admin of the company (may configure); viewer: read-only */
  role: 'admin' | 'viewer';
  /** When the sign-in completed (ISO): a session ends SESSION_TTL_MS after it, however active. */
  signedInAt: string;
}

declare module 'fastify' {
  interface Session {
    user?: WebUser;
  }
}
