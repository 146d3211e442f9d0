import { BodyTooLarge, readCapped } from '../http/read-capped.js';
import type { Metrics } from '../metrics/metrics.js';
import { LarkApiError, LarkResponseRefusedError, LarkTransportError } from './errors.js';
import { codeLabel } from './known-codes.js';

export interface LarkRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path under the base URL, e.g. `/open-apis/auth/v3/app_access_token` */
  path: string;
  /** Low-cardinality label for metrics, e.g. `/open-apis/approval/v4/instances/:id`; defaults to `path`. */
  endpoint?: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /**
   * The JSON body already serialized, instead of `body`: a large body (a 1,000-record write call)
   * serialized ahead of time, so sending it spends no CPU on it.
   */
  json?: string;
  /** A multipart body (a media upload) instead of JSON; fetch sets its boundary. */
  form?: FormData;
  bearer?: string;
  timeoutMs?: number;
  /**
   * OAuth v2 answers (auth.md §5.2) put their fields at the top level and may send `code` as a
   * string ("0") or, on success, leave it out; their error text is `error_description`. Read them
   * as the other answers are read.
   */
  oauth?: boolean;
  /** A file download: an answer that is not JSON comes back as `body.bytes` (code 0); a JSON one is read as usual. */
  bytes?: boolean;
}

export interface LarkResponse<T> {
  status: number;
  headers: Headers;
  body: T & { code: number; msg?: string };
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Largest Lark answer read. Lark's biggest pages (500 Base records) are a few MB; a body past this
 * is an upstream fault or a hostile custom domain, and reading it whole could take the process
 * down (and with it every replica that resumes the same run).
 */
export const MAX_LARK_BODY_BYTES = 32 * 1024 * 1024;

export interface LarkHttpOptions {
  maxBodyBytes?: number;
}

/**
 * The one place larksync talks HTTP to Lark. It parses the JSON body whatever the HTTP status
 * (Lark signals business errors in `code`), turns any non-zero code into a LarkApiError, and
 * counts every call by endpoint and code. Errors never include headers or bodies, so tokens
 * and secrets cannot leak through them. Redirects are never followed: a 307/308 would re-send the
 * body (an app secret) to wherever the answer points. Bodies are read up to MAX_LARK_BODY_BYTES.
 */
export class LarkHttp {
  private readonly maxBodyBytes: number;

  constructor(
    private readonly metrics: Metrics,
    opts: LarkHttpOptions = {},
  ) {
    this.maxBodyBytes = opts.maxBodyBytes ?? MAX_LARK_BODY_BYTES;
  }

  async call<T>(baseUrl: string, req: LarkRequest): Promise<LarkResponse<T>> {
    const endpoint = req.endpoint ?? req.path;
    const url = new URL(baseUrl + req.path);
    for (const [k, v] of Object.entries(req.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = {};
    if (req.body !== undefined || req.json !== undefined) headers['content-type'] = 'application/json; charset=utf-8';
    if (req.bearer !== undefined) headers.authorization = `Bearer ${req.bearer}`;

    const stop = this.metrics.upstreamLatency.startTimer({ endpoint });
    let res: Response;
    let text: string;
    let bytes: Buffer;
    /** A download answered with the file itself (not Lark's JSON). */
    let file = false;
    try {
      res = await fetch(url, {
        method: req.method,
        headers,
        body: req.form ?? req.json ?? (req.body === undefined ? undefined : JSON.stringify(req.body)),
        // (unconfirmed) Lark's Open API is not documented to redirect; an answer that does is
        // treated as a failed call rather than followed.
        redirect: 'manual',
        signal: AbortSignal.timeout(req.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        stop();
        this.metrics.upstreamCalls.inc({ endpoint, code: 'redirect' });
        throw new LarkResponseRefusedError(endpoint, 'redirect', res.status);
      }
      bytes = await readCapped(res, this.maxBodyBytes);
      file = req.bytes === true && res.ok && !/json/i.test(res.headers.get('content-type') ?? '');
      text = file ? '' : bytes.toString('utf8');
    } catch (err) {
      if (err instanceof LarkResponseRefusedError) throw err;
      stop();
      if (err instanceof BodyTooLarge) {
        this.metrics.upstreamCalls.inc({ endpoint, code: 'body_too_large' });
        throw new LarkResponseRefusedError(endpoint, 'body_too_large', res!.status);
      }
      this.metrics.upstreamCalls.inc({ endpoint, code: 'transport_error' });
      const reason = err instanceof Error && err.name === 'TimeoutError' ? 'timeout' : describeCause(err);
      throw new LarkTransportError(endpoint, reason);
    }
    stop();
    if (file) {
      this.metrics.upstreamCalls.inc({ endpoint, code: '0' });
      return { status: res.status, headers: res.headers, body: { code: 0, bytes } as unknown as T & { code: number } };
    }

    let body: { code?: unknown; msg?: unknown; error?: { log_id?: unknown } } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    if (req.oauth && body && typeof body === 'object') body = oauthBody(body as Record<string, unknown>);
    if (!body || typeof body !== 'object' || typeof body.code !== 'number') {
      this.metrics.upstreamCalls.inc({ endpoint, code: `http_${res.status}` });
      throw new LarkTransportError(endpoint, `HTTP ${res.status} without a Lark JSON body`, res.status);
    }
    this.metrics.upstreamCalls.inc({ endpoint, code: codeLabel(body.code) });
    if (body.code !== 0) {
      const reset = Number(res.headers.get('x-ogw-ratelimit-reset'));
      throw new LarkApiError(
        endpoint,
        body.code,
        typeof body.msg === 'string' ? body.msg.slice(0, 300) : '',
        res.status,
        res.headers.get('x-tt-logid') ?? (typeof body.error?.log_id === 'string' ? body.error.log_id : undefined),
        Number.isFinite(reset) && reset >= 0 ? reset : undefined,
      );
    }
    return { status: res.status, headers: res.headers, body: body as T & { code: number; msg?: string } };
  }
}

/** An OAuth v2 answer in the shape of the others: a numeric `code`, the error text as `msg`. */
function oauthBody(b: Record<string, unknown>): { code?: unknown; msg?: unknown } {
  let code = b.code;
  if (typeof code === 'string' && /^\d+$/.test(code)) code = Number(code);
  if (code === undefined && typeof b.access_token === 'string') code = 0;
  const msg = typeof b.error_description === 'string' ? b.error_description : typeof b.msg === 'string' ? b.msg : typeof b.error === 'string' ? b.error : '';
  return { ...b, code, msg };
}

function describeCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string } })?.cause;
  if (cause?.code) return cause.code;
  return err instanceof Error ? err.name : 'network error';
}
