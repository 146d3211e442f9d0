import { expect } from 'vitest';
import { STORE_APP, type Stack } from './stack.js';

/** One HTTP answer of the web pages, redirects not followed. */
export interface Page {
  status: number;
  headers: Headers;
  location: string | null;
  setCookie: string | null;
  body: string;
}

export async function fetchPage(
  stack: Stack,
  path: string,
  opts: { cookie?: string; method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<Page> {
  const url = path.startsWith('http') ? path : `${stack.larksync.url}${path}`;
  const res = await fetch(url, {
    method: opts.method ?? (opts.form ? 'POST' : 'GET'),
    redirect: 'manual',
    headers: {
      ...(opts.cookie ? { cookie: opts.cookie } : {}),
      ...(opts.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      ...opts.headers,
    },
    body: opts.form ? new URLSearchParams(opts.form).toString() : undefined,
  });
  return { status: res.status, headers: res.headers, location: res.headers.get('location'), setCookie: res.headers.get('set-cookie'), body: await res.text() };
}

/** `larksync_session=<value>` from a set-cookie header. */
export function sessionCookie(setCookie: string | null): string {
  const m = /larksync_session=([^;]+)/.exec(setCookie ?? '');
  expect(m, `a session cookie in ${setCookie}`).toBeTruthy();
  return `larksync_session=${m![1]}`;
}

export interface SignedIn {
  cookie: string;
  /** The sign-in's answers, for secret scans: the authorize URL, the callback URL (with Lark's code). */
  authorizeUrl: string;
  callbackUrl: string;
  callback: Page;
}

/**
 * Signs a simulator user in to the admin page over HTTP (the authorize page skipped with
 * sim.authorizeAs) and returns the session cookie.
 */
export async function signInAs(
  stack: Stack,
  user: { openId: string; tenantKey: string },
  opts: { returnTo?: string; callbackHeaders?: Record<string, string>; app?: string } = {},
): Promise<SignedIn> {
  const start = await fetchPage(stack, `/auth/lark/login?returnTo=${encodeURIComponent(opts.returnTo ?? '/admin')}${opts.app ? `&app=${opts.app}` : ''}`);
  expect(start.status).toBe(302);
  const q = Object.fromEntries(new URL(start.location!).searchParams) as Record<string, string>;
  const callbackUrl = stack.sim.authorizeAs(opts.app ?? STORE_APP.appId, user, {
    redirect_uri: q.redirect_uri!,
    scope: q.scope,
    state: q.state,
    code_challenge: q.code_challenge,
    code_challenge_method: 'S256',
  });
  const callback = await fetchPage(stack, callbackUrl, { headers: opts.callbackHeaders });
  expect(callback.status, callback.body).toBe(302);
  return { cookie: sessionCookie(callback.setCookie), authorizeUrl: start.location!, callbackUrl, callback };
}

/** The CSRF token a page's forms carry. */
export function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  expect(m, 'a _csrf field on the page').toBeTruthy();
  return m![1]!;
}

/** Text of a page without tags, entities as they are (for "shows X" checks). */
export const textOf = (html: string) => html.replace(/<script[\s\S]*?<\/script>/g, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
