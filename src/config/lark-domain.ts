/** A Lark brand name or a full base URL (used for simulators and private deployments). */
export type LarkDomain = string;

// A Map, not an object literal: `"constructor" in {...}` is true, which once let such names pass
// as brands and resolve to a function instead of a URL.
const BRANDS = new Map<string, string>(Object.entries({
  feishu: 'https://open.feishu.cn',
  lark: 'https://open.larksuite.com',
}));

export function isValidLarkDomain(value: string): boolean {
  if (BRANDS.has(value)) return true;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Resolves `feishu`, `lark` or a URL to the Open API base URL, without a trailing slash. */
export function larkBaseUrl(domain: LarkDomain): string {
  const brand = BRANDS.get(domain);
  if (brand) return brand;
  return domain.replace(/\/+$/, '');
}
