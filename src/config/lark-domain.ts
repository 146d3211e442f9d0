/** A Lark brand name or a full base URL (used for simulators and private deployments). */
export type LarkDomain = string;

const BRANDS: Record<string, string> = {
  feishu: 'https://open.feishu.cn',
  lark: 'https://open.larksuite.com',
};

export function isValidLarkDomain(value: string): boolean {
  if (value in BRANDS) return true;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Resolves `feishu`, `lark` or a URL to the Open API base URL, without a trailing slash. */
export function larkBaseUrl(domain: LarkDomain): string {
  const brand = BRANDS[domain];
  if (brand) return brand;
  return domain.replace(/\/+$/, '');
}
