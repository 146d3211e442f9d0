import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import type { SinkType } from './sinks.table.js';

/**
 * A sink's URL as an operator gives it, checked and made canonical:
 * - RAGFlow: the server's address (`http://ragflow.example.com:9380`); a trailing `/api/v1` is dropped;
 * - Dify: the Service API base shown under Knowledge → Service API (`https://api.dify.ai/v1`); `/v1` is added when missing.
 * A path prefix (a reverse proxy) is kept. With `allowPrivate` off (production: DATABASE_URL set,
 * ALLOW_PRIVATE_SINKS unset) only https on a public host is taken: an API token holder must not
 * make larksync send documents and the sink's key into its private network.
 */

export type SinkUrlCheck = { ok: true; url: string } | { ok: false; problem: string };

const PRIVATE_HINT = 'set ALLOW_PRIVATE_SINKS=1 to allow sinks on a private network';

function isNonPublic(address: string): boolean {
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  return ip.range() !== 'unicast';
}

const bareHost = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
const isLocalName = (host: string) => {
  const name = host.replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
};

export function checkSinkUrl(type: SinkType, value: string, allowPrivate: boolean): SinkUrlCheck {
  if (/[?#\s\\]/.test(value)) return { ok: false, problem: 'must not contain a query, a fragment, spaces or backslashes' };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, problem: 'is not a URL; give e.g. https://ragflow.example.com or https://api.dify.ai/v1' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, problem: 'must start with https:// (or http://)' };
  if (url.username !== '' || url.password !== '') return { ok: false, problem: 'must not contain credentials (user:password@); the key goes in apiKey' };
  if (!allowPrivate) {
    if (url.protocol !== 'https:') return { ok: false, problem: `must use https:// (${PRIVATE_HINT} over http)` };
    const host = bareHost(url);
    if (isLocalName(host) || (ipaddr.isValid(host) && isNonPublic(host))) {
      return { ok: false, problem: `must not be a private, loopback or link-local host (${PRIVATE_HINT})` };
    }
  }
  let path = url.pathname.replace(/\/+$/, '');
  if (type === 'ragflow') path = path.replace(/\/api\/v1$/i, '');
  if (type === 'dify' && !/\/v1$/i.test(path)) path = `${path}/v1`;
  return { ok: true, url: url.origin + path };
}

/** Where the product's API lives under the stored URL. */
export function apiBase(type: SinkType, url: string): string {
  return type === 'ragflow' ? `${url}/api/v1` : url;
}

/** A host name that resolves to a non-public address is refused in production (checked at PUT and at each delivery). */
export async function checkSinkUrlResolves(url: string, allowPrivate: boolean): Promise<string | undefined> {
  if (allowPrivate) return undefined;
  const host = bareHost(new URL(url));
  if (ipaddr.isValid(host)) return undefined;
  let addresses: Array<{ address: string }>;
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch {
    return 'its host name does not resolve';
  }
  if (addresses.some((a) => isNonPublic(a.address))) return `its host name resolves to a private, loopback or link-local address (${PRIVATE_HINT})`;
  return undefined;
}
