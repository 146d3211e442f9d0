import { randomBytes } from 'node:crypto';
import { LarkSimulator, type SimApp, type SimulatorOptions } from '../../simulator/lark-simulator.js';
import { SimData } from '../../simulator/data/index.js';
import { OAUTH_PATHS, challengeFor } from '../../simulator/oauth/index.js';

/** Raw-HTTP helpers for the simulator's user sign-in (authorize page, v2 token endpoint). */

export const REDIRECT = 'https://app.example.com/oauth/callback';

export interface TokenBody {
  code: number | string;
  access_token?: string;
  expires_in?: number;
  refresh_token?: string;
  refresh_token_expires_in?: number;
  token_type?: string;
  scope?: string;
  error?: string;
  error_description?: string;
}

export interface OAuthSim {
  sim: LarkSimulator;
  data: SimData;
  stop(): Promise<void>;
}

/** A started simulator with SimData attached (so tenants have contact users) and the given apps. */
export async function startOAuthSim(apps: SimApp[], installs: Array<[appId: string, tenantKey: string]>, opts: SimulatorOptions = {}): Promise<OAuthSim> {
  const sim = new LarkSimulator(opts);
  for (const a of apps) sim.addApp(a);
  for (const [appId, tenantKey] of installs) sim.installTenant(appId, tenantKey);
  const data = new SimData(sim, { enforceRateLimits: false });
  await sim.start();
  return { sim, data, stop: () => sim.stop() };
}

/** A PKCE verifier (43–128 chars) and its S256 challenge. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(48).toString('base64url');
  return { verifier, challenge: challengeFor(verifier, 'S256') };
}

/** The code and state (or error) a redirect carries. */
export function redirectParams(location: string): { url: URL; code: string | null; state: string | null; error: string | null } {
  const url = new URL(location);
  return { url, code: url.searchParams.get('code'), state: url.searchParams.get('state'), error: url.searchParams.get('error') };
}

export async function postToken(
  sim: LarkSimulator,
  body: Record<string, string> | string,
  opts: { form?: boolean; basic?: [string, string]; contentType?: string } = {},
): Promise<{ status: number; body: TokenBody }> {
  const headers: Record<string, string> = {
    'content-type': opts.contentType ?? (opts.form ? 'application/x-www-form-urlencoded' : 'application/json; charset=utf-8'),
  };
  if (opts.basic) headers.authorization = `Basic ${Buffer.from(`${opts.basic[0]}:${opts.basic[1]}`).toString('base64')}`;
  const payload = typeof body === 'string' ? body : opts.form ? new URLSearchParams(body).toString() : JSON.stringify(body);
  const res = await fetch(sim.url + OAUTH_PATHS.token, { method: 'POST', headers, body: payload });
  return { status: res.status, body: (await res.json()) as TokenBody };
}

/** Exchanges a code the way the docs' web flow does (JSON body). */
export function exchange(sim: LarkSimulator, app: { appId: string; appSecret: string }, code: string, extra: Record<string, string> = {}) {
  return postToken(sim, { grant_type: 'authorization_code', client_id: app.appId, client_secret: app.appSecret, code, redirect_uri: REDIRECT, ...extra });
}

export function refresh(sim: LarkSimulator, app: { appId: string; appSecret: string }, refreshToken: string, extra: Record<string, string> = {}) {
  return postToken(sim, { grant_type: 'refresh_token', client_id: app.appId, client_secret: app.appSecret, refresh_token: refreshToken, ...extra });
}

export async function getWith(sim: LarkSimulator, token: string, path: string): Promise<{ status: number; body: { code: number; msg?: string; data?: Record<string, unknown> } }> {
  const res = await fetch(sim.url + path, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as { code: number; msg?: string; data?: Record<string, unknown> } };
}

export interface PageForm {
  action: string;
  attrs: Record<string, string>;
  hidden: Record<string, string>;
  buttons: Array<{ name: string; value: string; text: string }>;
}

const unescape = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const attrsOf = (tag: string) => Object.fromEntries([...tag.matchAll(/([a-z-]+)="([^"]*)"/g)].map((m) => [m[1]!, unescape(m[2]!)]));

/** The forms of the authorize page, read the way a browser would submit them. */
export function parseForms(html: string): PageForm[] {
  return [...html.matchAll(/<form([^>]*)>([\s\S]*?)<\/form>/g)].map((m) => {
    const attrs = attrsOf(m[1]!);
    const inner = m[2]!;
    const hidden = Object.fromEntries(
      [...inner.matchAll(/<input([^>]*)>/g)].map((i) => attrsOf(i[1]!)).filter((a) => a.type === 'hidden').map((a) => [a.name!, a.value ?? '']),
    );
    const buttons = [...inner.matchAll(/<button([^>]*)>([\s\S]*?)<\/button>/g)].map((b) => {
      const a = attrsOf(b[1]!);
      return { name: a.name ?? '', value: a.value ?? '', text: unescape(b[2]!) };
    });
    return { action: attrs.action ?? '', attrs, hidden, buttons };
  });
}

/** Clicks a button of a form: posts its hidden fields plus the button's name=value, without following the redirect. */
export async function submit(sim: LarkSimulator, form: PageForm, buttonText: string | RegExp): Promise<Response> {
  const button = form.buttons.find((b) => (typeof buttonText === 'string' ? b.text === buttonText : buttonText.test(b.text)));
  if (!button) throw new Error(`no button ${String(buttonText)} in ${JSON.stringify(form.buttons)}`);
  const fields = new URLSearchParams({ ...form.hidden, ...(button.name ? { [button.name]: button.value } : {}) });
  return fetch(new URL(form.action, sim.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: fields.toString(),
    redirect: 'manual',
  });
}

/** The authorize page's URL for an app with the given query. */
export function authorizeUrl(sim: LarkSimulator, query: Record<string, string>): string {
  return `${sim.url}${OAUTH_PATHS.authorize}?${new URLSearchParams(query).toString()}`;
}
