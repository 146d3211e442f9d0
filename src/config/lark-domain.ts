import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

/** A Lark brand name (`feishu`, `lark`) or an http(s) origin (used for simulators and private deployments). */
export type LarkDomain = string;

// A Map, not an object literal: `"constructor" in {...}` is true, which once let such names pass
// as brands and resolve to a function instead of a URL.
const BRANDS = new Map<string, string>(Object.entries({
  feishu: 'https://open.feishu.cn',
  lark: 'https://open.larksuite.com',
}));

export const LARK_DOMAIN_EXPECTATION = '"feishu", "lark" or an http(s) origin such as https://open.example.com (scheme, host, port; no path, query, fragment or credentials)';

export type DomainCheck = { ok: true; domain: LarkDomain } | { ok: false; problem: string };

export interface DomainPolicy {
  /**
   * Allow `http://` and hosts on private, loopback or link-local networks. Off in production
   * (DATABASE_URL set) unless ALLOW_PRIVATE_LARK_DOMAINS=1: an API token holder could otherwise
   * point a custom app at an internal service and have larksync POST the app secret to it.
   */
  allowPrivate: boolean;
}

/**
 * Anything but an ordinary public unicast address: loopback, RFC 1918 private, link-local (cloud
 * metadata at 169.254.169.254), unique-local, carrier-grade NAT, unspecified, multicast, reserved.
 */
function isNonPublicAddress(address: string): boolean {
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  return ip.range() !== 'unicast';
}

/** A host name that names this machine whatever DNS says (RFC 6761), with or without the root's dot. */
const isLocalName = (host: string) => {
  const name = host.replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
};

/** The URL's host without IPv6 brackets. */
const bareHost = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();

/**
 * Checks a domain as given by an operator (LARK_DOMAIN) or an API client (`domain` of a custom
 * app) and returns its canonical form: the brand name, or the URL's origin. Only an origin is
 * taken: a path, query or fragment would be glued in front of `/open-apis/...` and could take over
 * the request's target (`http://host/x?` + `/open-apis/...` keeps the attacker's path).
 */
export function checkLarkDomain(value: string, policy: DomainPolicy): DomainCheck {
  if (BRANDS.has(value)) return { ok: true, domain: value };
  // The raw text is checked too: `new URL('https://h/?')` reports an empty query, not none.
  if (/[?#\s\\]/.test(value)) return { ok: false, problem: 'must not contain a query, a fragment, spaces or backslashes' };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, problem: `expected ${LARK_DOMAIN_EXPECTATION}` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, problem: `expected ${LARK_DOMAIN_EXPECTATION}` };
  if (url.username !== '' || url.password !== '') return { ok: false, problem: 'must not contain credentials (user:password@)' };
  if (url.pathname !== '/' && url.pathname !== '') return { ok: false, problem: 'must not contain a path: give the origin only, e.g. https://open.example.com' };
  if (!policy.allowPrivate) {
    if (url.protocol !== 'https:') return { ok: false, problem: 'must use https:// in production (set ALLOW_PRIVATE_LARK_DOMAINS=1 for a simulator)' };
    const host = bareHost(url);
    if (isLocalName(host) || (ipaddr.isValid(host) && isNonPublicAddress(host))) {
      return { ok: false, problem: 'must not be a private, loopback or link-local host in production (set ALLOW_PRIVATE_LARK_DOMAINS=1 for a simulator)' };
    }
  }
  return { ok: true, domain: url.origin };
}

/** Syntax only (the embedded/test policy). */
export function isValidLarkDomain(value: string): boolean {
  return checkLarkDomain(value, { allowPrivate: true }).ok;
}

/**
 * The registration-time check of a host name: it must not resolve to a non-public address
 * (`metadata.internal`, a name pointing at 10.0.0.5). A name that resolves differently later (DNS
 * rebinding) is not caught here; the syntax checks above still hold then.
 */
export async function checkLarkDomainResolves(domain: LarkDomain, policy: DomainPolicy): Promise<string | undefined> {
  if (policy.allowPrivate || BRANDS.has(domain)) return undefined;
  const host = bareHost(new URL(domain));
  if (ipaddr.isValid(host)) return undefined;
  let addresses: Array<{ address: string }>;
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch {
    return 'its host name does not resolve';
  }
  if (addresses.some((a) => isNonPublicAddress(a.address))) {
    return 'its host name resolves to a private, loopback or link-local address';
  }
  return undefined;
}

const ACCOUNTS = new Map<string, string>(Object.entries({
  feishu: 'https://accounts.feishu.cn',
  lark: 'https://accounts.larksuite.com',
}));

/**
 * Where a user signs in (Lark's authorize page, auth.md §5.1): the accounts host of the brand;
 * for an origin (a simulator, a private deployment), that origin.
 */
export function larkAccountsUrl(domain: LarkDomain): string {
  return ACCOUNTS.get(domain) ?? larkBaseUrl(domain);
}

/** Resolves `feishu`, `lark` or an origin to the Open API base URL, without a trailing slash. */
export function larkBaseUrl(domain: LarkDomain): string {
  const brand = BRANDS.get(domain);
  if (brand) return brand;
  // Rows stored before origins were enforced may hold a path or a query: only the origin is used,
  // so such a row cannot steer requests anywhere but its host.
  try {
    return new URL(domain).origin;
  } catch {
    return domain.replace(/\/+$/, '');
  }
}
