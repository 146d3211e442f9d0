import { lookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import ipaddr from 'ipaddr.js';

/** Resolves a host name to every address it has (dns.lookup by default; tests play DNS). */
export type Resolver = (host: string) => Promise<LookupAddress[]>;

export const systemResolver: Resolver = (host) => lookup(host, { all: true, verbatim: true });

export interface UrlPolicy {
  /**
   * `http://` and loopback, private and link-local targets allowed: ALLOW_PRIVATE_WEBHOOKS=1, or
   * an embedded (local) start. Off in production: an API token holder could otherwise make
   * larksync POST to services of its own network (cloud metadata at 169.254.169.254 and the like).
   */
  allowPrivate: boolean;
}

export const MAX_URL_LENGTH = 2000;

const PRIVATE_HINT = 'set ALLOW_PRIVATE_WEBHOOKS=1 for a receiver on a private network or this machine';

/**
 * Anything but an ordinary public unicast address: loopback, RFC 1918 private, link-local,
 * unique-local, carrier-grade NAT, unspecified, multicast, reserved. An IPv4-mapped IPv6 address
 * is judged as the IPv4 address it carries.
 */
export function isNonPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return true;
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  return ip.range() !== 'unicast';
}

const bareHost = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/\.$/, '');
const isLocalName = (host: string) => host === 'localhost' || host.endsWith('.localhost');

export type UrlCheck = { ok: true; url: string } | { ok: false; problem: string };

/** The syntax and policy of a webhook URL, as an operator gives it; answers its normal form. */
export function checkWebhookUrl(value: string, policy: UrlPolicy): UrlCheck {
  if (value.length > MAX_URL_LENGTH) return { ok: false, problem: `must be at most ${MAX_URL_LENGTH} characters` };
  if (/[\s\\#]/.test(value)) return { ok: false, problem: 'must not contain spaces, backslashes or a fragment (#)' };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, problem: 'must be an absolute https:// URL, e.g. https://example.com/hooks/larksync' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { ok: false, problem: 'must be an https:// URL' };
  if (url.username !== '' || url.password !== '') return { ok: false, problem: 'must not contain credentials (user:password@)' };
  if (!policy.allowPrivate) {
    if (url.protocol !== 'https:') return { ok: false, problem: `must use https:// (${PRIVATE_HINT})` };
    const host = bareHost(url);
    if (isLocalName(host) || (ipaddr.isValid(host) && isNonPublicAddress(host))) {
      return { ok: false, problem: `must not point at a loopback, private or link-local address (${PRIVATE_HINT})` };
    }
  }
  return { ok: true, url: url.toString() };
}

/**
 * The create/update-time check of the host name: every address it resolves to must be public. A
 * name that resolves elsewhere later (DNS rebinding) is caught at delivery time (guardedLookup).
 */
export async function checkWebhookUrlResolves(value: string, policy: UrlPolicy, resolve: Resolver = systemResolver): Promise<string | undefined> {
  if (policy.allowPrivate) return undefined;
  const host = bareHost(new URL(value));
  if (ipaddr.isValid(host)) return undefined;
  let addresses: LookupAddress[];
  try {
    addresses = await resolve(host);
  } catch {
    return 'its host name does not resolve';
  }
  if (addresses.length === 0) return 'its host name does not resolve';
  if (addresses.some((a) => isNonPublicAddress(a.address))) return `its host name resolves to a loopback, private or link-local address (${PRIVATE_HINT})`;
  return undefined;
}

export class AddressNotAllowedError extends Error {
  readonly code = 'ADDRESS_NOT_ALLOWED';
  constructor() {
    super('the host resolves to a loopback, private or link-local address');
    this.name = 'AddressNotAllowedError';
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for the socket of a delivery: the name is resolved here, every address is checked,
 * and the connection goes to an address checked, so a name that turned private since the webhook
 * was saved (DNS rebinding) is refused before any byte is sent. Handles both the single-address
 * and the `all` form (Node asks for every address when it races IPv4 and IPv6).
 */
export function guardedLookup(policy: UrlPolicy, resolve: Resolver = systemResolver) {
  return (hostname: string, options: { all?: boolean } | number | undefined, callback: LookupCallback): void => {
    const all = typeof options === 'object' && options !== null && options.all === true;
    resolve(hostname).then(
      (addresses) => {
        if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} does not resolve`), { code: 'ENOTFOUND' }), '');
        if (!policy.allowPrivate && addresses.some((a) => isNonPublicAddress(a.address))) return callback(new AddressNotAllowedError(), '');
        if (all) return callback(null, addresses);
        callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };
}
