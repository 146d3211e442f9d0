import http from 'node:http';
import https from 'node:https';
import ipaddr from 'ipaddr.js';
import { Webhook } from 'standardwebhooks';
import { AddressNotAllowedError, guardedLookup, isNonPublicAddress, systemResolver, type Resolver, type UrlPolicy } from './url-policy.js';

/** One delivery attempt's message: its webhook-id, the body as sent, and the secrets that sign it. */
export interface OutgoingMessage {
  url: string;
  messageId: string;
  body: string;
  /** `whsec_…` secrets: the current one, and during a rotation's overlap the previous one too */
  secrets: string[];
}

export interface SendResult {
  /** the answer's HTTP status, when one came */
  statusCode: number | null;
  ok: boolean;
  latencyMs: number;
  /** why it failed, in words fit for the API (never a header or a body) */
  error: string | null;
}

export interface SenderOptions extends UrlPolicy {
  timeoutMs: number;
  /** At most this much of an answer is read; the rest is dropped with the connection. */
  maxResponseBytes: number;
  resolve?: Resolver;
}

/**
 * The Standard Webhooks headers: `webhook-signature` holds one `v1,<base64 HMAC-SHA256>` per
 * secret, space-separated, over `<webhook-id>.<webhook-timestamp>.<body>` (the standardwebhooks
 * package signs; a receiver accepts the message if any signature verifies).
 */
export function signedHeaders(msg: OutgoingMessage, at: Date): Record<string, string> {
  const signature = msg.secrets.map((s) => new Webhook(s).sign(msg.messageId, at, msg.body)).join(' ');
  return {
    'content-type': 'application/json',
    'user-agent': 'larksync-webhooks/1',
    'webhook-id': msg.messageId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
}

/**
 * Sends deliveries: POST over keep-alive connections, the socket connected only to an address
 * that passed the policy (checked after DNS resolution, see guardedLookup), redirects never
 * followed (a 3xx is a failed attempt), a deadline over the whole exchange, and at most
 * `maxResponseBytes` of the answer read.
 */
export class WebhookSender {
  private readonly agents: { http: http.Agent; https: https.Agent };
  private readonly lookup: ReturnType<typeof guardedLookup>;

  constructor(private readonly opts: SenderOptions) {
    this.agents = { http: new http.Agent({ keepAlive: true, maxSockets: 64 }), https: new https.Agent({ keepAlive: true, maxSockets: 64 }) };
    this.lookup = guardedLookup(opts, opts.resolve ?? systemResolver);
  }

  async send(msg: OutgoingMessage, at: Date): Promise<SendResult> {
    const started = performance.now();
    const done = (statusCode: number | null, error: string | null): SendResult => ({
      statusCode,
      ok: error === null && statusCode !== null && statusCode >= 200 && statusCode < 300,
      latencyMs: Math.round(performance.now() - started),
      error,
    });
    let url: URL;
    try {
      url = new URL(msg.url);
    } catch {
      return done(null, 'the URL is not valid');
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    // An address written in the URL is never looked up: it is judged here.
    if (!this.opts.allowPrivate && ipaddr.isValid(host) && isNonPublicAddress(host)) return done(null, new AddressNotAllowedError().message);
    const body = Buffer.from(msg.body, 'utf8');
    const headers = { ...signedHeaders(msg, at), 'content-length': String(body.length) };
    const first = await this.post(url, headers, body, done);
    // A kept-alive connection the receiver closed just as it was reused: once more at once on a
    // new one, rather than a failed attempt and a retry seconds later (had the first reached the
    // receiver after all, the same webhook-id makes the second a duplicate it drops).
    return first.staleSocket ? (await this.post(url, headers, body, done)).result : first.result;
  }

  private post(
    url: URL,
    headers: Record<string, string>,
    body: Buffer,
    done: (statusCode: number | null, error: string | null) => SendResult,
  ): Promise<{ result: SendResult; staleSocket: boolean }> {
    const secure = url.protocol === 'https:';
    return new Promise((resolveOuter) => {
      let stale = false;
      const resolve = (result: SendResult) => resolveOuter({ result, staleSocket: stale });
      let settled = false;
      const finish = (statusCode: number | null, error: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(done(statusCode, error));
      };
      const req = (secure ? https : http).request(url, {
        method: 'POST',
        headers,
        agent: secure ? this.agents.https : this.agents.http,
        lookup: this.lookup as unknown as http.RequestOptions['lookup'],
      });
      const timer = setTimeout(() => {
        finish(null, `no answer within ${this.opts.timeoutMs >= 1000 ? `${Math.round(this.opts.timeoutMs / 1000)} s` : `${this.opts.timeoutMs} ms`}`);
        req.destroy();
      }, this.opts.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        stale = req.reusedSocket && err.code === 'ECONNRESET' && !answered;
        finish(null, describe(err));
      });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        const status = res.statusCode ?? 0;
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > this.opts.maxResponseBytes) {
            // Enough: the status is known, the rest of the answer is not wanted.
            res.destroy();
            finish(status, status >= 300 && status < 400 ? `HTTP ${status}: redirects are not followed` : status >= 200 && status < 300 ? null : `HTTP ${status}`);
          }
        });
        res.on('end', () => finish(status, status >= 300 && status < 400 ? `HTTP ${status}: redirects are not followed` : status >= 200 && status < 300 ? null : `HTTP ${status}`));
        res.on('error', (err: NodeJS.ErrnoException) => finish(status, describe(err)));
      });
      req.end(body);
    });
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

function describe(err: NodeJS.ErrnoException): string {
  if (err instanceof AddressNotAllowedError || err.code === 'ADDRESS_NOT_ALLOWED') return new AddressNotAllowedError().message;
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ETIMEDOUT':
      return 'connection timed out';
    default:
      return err.code ? `network error (${err.code})` : 'network error';
  }
}
