import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import type { LarkHttp } from '../lark/http.js';
import type { TenantTokens } from '../tokens/tokens.service.js';
import type { AttachmentSource } from './field-values.js';

/**
 * Files for attachment fields: fetched from an https URL or decoded from base64, then uploaded to
 * Lark's media API for this Base (a file token only works in the Base it was uploaded to,
 * bitable.md §3). upload_all takes files up to 20 MB (larger ones need the chunked upload, not
 * done here).
 */
export const MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024;

export class AttachmentError extends Error {}

const isPublic = (address: string) => {
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  return ip.range() === 'unicast';
};

/**
 * Downloads a file for an attachment: https only, the host must resolve to public addresses only
 * (an API client must not make larksync fetch from its private network), no redirects, a size
 * cap. `allowPrivate` lifts the address check (tests, the simulator).
 */
export async function fetchAttachment(url: string, opts: { allowPrivate: boolean }): Promise<{ bytes: Buffer; name: string; type: string }> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AttachmentError('not a URL');
  }
  if (u.protocol !== 'https:' && !(opts.allowPrivate && u.protocol === 'http:')) throw new AttachmentError('attachments are fetched over https only');
  if (u.username || u.password) throw new AttachmentError('a URL with credentials is refused');
  if (!opts.allowPrivate) {
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    const addresses = ipaddr.isValid(host) ? [{ address: host }] : await lookup(host, { all: true, verbatim: true }).catch(() => []);
    if (addresses.length === 0) throw new AttachmentError('its host name does not resolve');
    if (!addresses.every((a) => isPublic(a.address))) throw new AttachmentError('its host is on a private, loopback or link-local network');
  }
  const res = await fetch(u, { redirect: 'error', signal: AbortSignal.timeout(30_000) }).catch((err: Error) => {
    throw new AttachmentError(`could not be fetched (${err.name})`);
  });
  if (!res.ok) throw new AttachmentError(`answered HTTP ${res.status}`);
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > MAX_ATTACHMENT_BYTES) throw new AttachmentError('is larger than 20 MB');
  const bytes = Buffer.from(await res.arrayBuffer());
  if (bytes.length > MAX_ATTACHMENT_BYTES) throw new AttachmentError('is larger than 20 MB');
  const name = decodeURIComponent(u.pathname.split('/').pop() || 'file').slice(0, 200) || 'file';
  return { bytes, name, type: res.headers.get('content-type') ?? 'application/octet-stream' };
}

export function decodeAttachment(src: { base64: string; name: string }): { bytes: Buffer; name: string; type: string } {
  const bytes = Buffer.from(src.base64, 'base64');
  if (bytes.length === 0) throw new AttachmentError('base64 holds no bytes');
  if (bytes.length > MAX_ATTACHMENT_BYTES) throw new AttachmentError('is larger than 20 MB');
  return { bytes, name: src.name.slice(0, 200), type: 'application/octet-stream' };
}

/** Uploads one file into the Base; answers its file_token. */
export async function uploadToBase(
  http: LarkHttp,
  tokens: TenantTokens,
  appToken: string,
  file: { bytes: Buffer; name: string; type: string },
): Promise<string> {
  const res = await tokens.withToken((token, baseUrl) => {
    const form = new FormData();
    form.set('file_name', file.name);
    form.set('parent_type', 'bitable_file');
    form.set('parent_node', appToken);
    form.set('size', String(file.bytes.length));
    form.set('file', new Blob([file.bytes], { type: file.type }), file.name);
    return http.call<{ data?: { file_token?: string } }>(baseUrl, {
      method: 'POST',
      path: '/open-apis/drive/v1/medias/upload_all',
      bearer: token,
      form,
      timeoutMs: 60_000,
    });
  });
  const fileToken = res.body.data?.file_token;
  if (!fileToken) throw new AttachmentError('Lark answered the upload without a file_token');
  return fileToken;
}

export async function loadSource(src: AttachmentSource, allowPrivate: boolean) {
  return 'url' in src ? fetchAttachment(src.url, { allowPrivate }) : decodeAttachment(src);
}
