import { BodyTooLarge, readCapped } from '../http/read-capped.js';
import { SinkRefusedError, SinkUnavailableError } from './sink-errors.js';

export interface SinkHttpOptions {
  /** Per call (default 30 s). */
  timeoutMs: number;
  /** Per upload (default 120 s). */
  uploadTimeoutMs: number;
  /** Largest answer read (default 16 MiB): a list page of 100 documents is a few hundred KB. */
  maxBodyBytes: number;
}

export const defaultSinkHttpOptions: SinkHttpOptions = { timeoutMs: 30_000, uploadTimeoutMs: 120_000, maxBodyBytes: 16 * 1024 * 1024 };

export interface SinkCall {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path under the sink's API base, e.g. `/datasets/{id}/documents`. */
  path: string;
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  form?: FormData;
  /** Low-cardinality name for metrics (`documents.upload`). */
  op: string;
}

export interface SinkAnswer {
  status: number;
  text: string;
  /** The body as JSON, or undefined when it is not JSON (a proxy's HTML page, an empty 204). */
  json: unknown;
}

/** Called after every call: the op and `ok`, `http_<status>`, `transport_error`, … (metrics, health). */
export type CallObserver = (op: string, outcome: string) => void;


function causeOf(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timeout';
  const code = (err as { cause?: { code?: string } })?.cause?.code;
  return code ?? (err instanceof Error ? err.name : 'network error');
}

/**
 * HTTP to one sink with Node's fetch (undici; FormData for multipart): bearer auth, a timeout per
 * call, no redirects (a 3xx would carry the API key elsewhere: it is a configuration error), and
 * answers read up to a cap. Errors never include the key, headers or bodies. Classifying the
 * answer (HTTP 200 with a `code` for RAGFlow, HTTP statuses for Dify) is the clients' job.
 */
export class SinkHttp {
  constructor(
    private readonly base: string,
    private readonly apiKey: string,
    private readonly opts: SinkHttpOptions,
    private readonly observe: CallObserver = () => undefined,
  ) {}

  /** The sink's text without the API key, shortened: what an error message may quote. */
  scrub(text: string): string {
    const clean = this.apiKey ? text.split(this.apiKey).join('[redacted]') : text;
    return clean.replace(/\s+/g, ' ').trim().slice(0, 300);
  }

  async send(call: SinkCall): Promise<SinkAnswer> {
    const url = new URL(this.base + call.path);
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) url.searchParams.append(k, String(v));
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}`, accept: 'application/json' };
    if (call.json !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: call.method,
        headers,
        body: call.form ?? (call.json === undefined ? undefined : JSON.stringify(call.json)),
        redirect: 'manual',
        signal: AbortSignal.timeout(call.form ? this.opts.uploadTimeoutMs : this.opts.timeoutMs),
      });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        this.observe(call.op, 'redirect');
        throw new SinkRefusedError(`the sink answered ${call.op} with a redirect (HTTP ${res.status}); give the URL it redirects to (e.g. https:// instead of http://)`);
      }
      text = (await readCapped(res, this.opts.maxBodyBytes)).toString('utf8');
    } catch (err) {
      if (err instanceof SinkRefusedError) throw err;
      if (err instanceof BodyTooLarge) {
        this.observe(call.op, 'body_too_large');
        throw new SinkUnavailableError(`the sink's answer to ${call.op} was larger than ${this.opts.maxBodyBytes} bytes`);
      }
      this.observe(call.op, 'transport_error');
      throw new SinkUnavailableError(`the sink could not be reached for ${call.op} (${causeOf(err)})`);
    }
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    this.observe(call.op, res.status >= 200 && res.status < 300 ? 'ok' : `http_${res.status}`);
    return { status: res.status, text, json };
  }
}
