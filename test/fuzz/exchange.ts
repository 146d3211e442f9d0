import { rawRequest, type RawRequest } from '../helpers/raw-http.js';

/** One answer, whichever way the request went out. `status` 0: no answer (connection closed). */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export interface Outgoing {
  method: string;
  /** Path and query, already encoded as they should go on the wire. */
  target: string;
  headers: Array<[string, string]>;
  body?: Buffer;
}

/** Through fetch (undici): well-formed HTTP, headers folded into one value per name. */
export async function viaFetch(base: string, req: Outgoing, timeoutMs = 15_000): Promise<Answer> {
  const headers = new Headers();
  for (const [k, v] of req.headers) headers.append(k, v);
  const hasBody = req.body !== undefined && req.method !== 'GET' && req.method !== 'HEAD';
  const res = await fetch(`${base}${req.target}`, {
    method: req.method,
    headers,
    body: hasBody ? new Uint8Array(req.body as Buffer) : undefined,
    signal: AbortSignal.timeout(timeoutMs),
    redirect: 'manual',
  });
  return { status: res.status, headers: Object.fromEntries(res.headers), text: await res.text() };
}

/** Over a raw socket: anything goes, malformed HTTP included. */
export async function viaSocket(
  base: string,
  req: Outgoing & Omit<RawRequest, 'method' | 'target' | 'headers' | 'body'>,
  opts?: { timeoutMs?: number; halfCloseAfterMs?: number },
): Promise<Answer> {
  const res = await rawRequest(base, req, { timeoutMs: 15_000, ...opts });
  return { status: res.status, headers: res.headers, text: res.body.toString('utf8') };
}

/** `{ error: { code, message } }` with two non-empty strings and nothing else, or undefined. */
export function errorEnvelope(text: string): { code: string; message: string } | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!body || typeof body !== 'object' || Object.keys(body).join() !== 'error') return undefined;
  const e = (body as { error: unknown }).error as Record<string, unknown> | null;
  if (!e || typeof e !== 'object' || Object.keys(e).sort().join() !== 'code,message') return undefined;
  if (typeof e.code !== 'string' || typeof e.message !== 'string' || !e.code || !e.message) return undefined;
  return { code: e.code, message: e.message };
}

/** Case counts per property and kind, printed at the end of a file. */
export class FuzzStats {
  private readonly props = new Map<string, { cases: number; ms: number; kinds: Map<string, number>; statuses: Map<number, number> }>();

  count(property: string, kind: string, status: number): void {
    const p = this.props.get(property) ?? { cases: 0, ms: 0, kinds: new Map(), statuses: new Map() };
    p.cases += 1;
    p.kinds.set(kind, (p.kinds.get(kind) ?? 0) + 1);
    p.statuses.set(status, (p.statuses.get(status) ?? 0) + 1);
    this.props.set(property, p);
  }

  timed(property: string, ms: number): void {
    const p = this.props.get(property);
    if (p) p.ms += ms;
  }

  total(): number {
    return [...this.props.values()].reduce((n, p) => n + p.cases, 0);
  }

  report(title: string): string {
    const lines = [`${title}: ${this.total()} cases`];
    for (const [name, p] of this.props) {
      const statuses = [...p.statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}x${n}`).join(' ');
      lines.push(`  ${name}: ${p.cases} cases in ${(p.ms / 1000).toFixed(1)} s [${statuses}]`);
    }
    return lines.join('\n');
  }
}

/** FUZZ_RUNS scales every property's case count (default 1; e.g. FUZZ_RUNS=10 for a long soak). */
export function runs(base: number): number {
  const factor = Number(process.env.FUZZ_RUNS ?? '1');
  return Math.max(1, Math.round(base * (Number.isFinite(factor) && factor > 0 ? factor : 1)));
}

/**
 * Wall-clock cap per property (ms): fast-check stops generating (or shrinking) when it is spent,
 * so a loaded machine runs fewer cases instead of hitting the test timeout. Scales with FUZZ_RUNS.
 */
export function budget(): number {
  const factor = Number(process.env.FUZZ_RUNS ?? '1');
  return Math.round(45_000 * Math.max(1, Number.isFinite(factor) ? factor : 1));
}
