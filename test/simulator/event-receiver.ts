import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AESCipher } from '@larksuiteoapi/node-sdk';
import { signPush } from '../../src/lark/event-crypto.js';

/**
 * A small request-URL server for the simulator's change events: one path per app
 * (`/events/<appId>`), signature checked and body decrypted with the app's encrypt key (the
 * SDK's AESCipher, not the simulator's code), every request kept. `answer` decides the HTTP
 * status of each request (default 200), so tests make Lark retry or hold events.
 */

export interface ReceivedPush {
  appId: string;
  /** `header.event_id` (v2) or `uuid` (v1). */
  id: string;
  schema: '1.0' | '2.0';
  /** `header.event_type` (v2) or `event.type` (v1). */
  type: string;
  /** The decrypted JSON body. */
  body: Record<string, any>;
  /** `body.event`. */
  event: Record<string, any>;
  headers: IncomingHttpHeaders;
  /** Signature headers present and correct (apps with an encrypt key); true for plain apps. */
  signatureOk: boolean;
  /** The status this request was answered with. */
  status: number;
  at: number;
}

export class EventReceiver {
  /** Every request, in arrival order. */
  readonly requests: ReceivedPush[] = [];
  /** Status for a request (`n`: how many requests with this id came before it). Default 200. */
  answer: (push: ReceivedPush, n: number) => number = () => 200;
  /** Delays the answer (ms), e.g. to keep several attempts in flight. */
  delayMs = 0;
  private server: Server | undefined;
  private base = '';

  constructor(private readonly keys: Record<string, string | undefined>) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const appId = decodeURIComponent((req.url ?? '').split('/').pop() ?? '');
        let push: ReceivedPush;
        try {
          push = this.parse(appId, raw, req.headers);
        } catch (err) {
          res.writeHead(400).end(String(err));
          return;
        }
        const n = this.requests.filter((r) => r.id === push.id).length;
        push.status = this.answer(push, n);
        this.requests.push(push);
        const send = () => res.writeHead(push.status, { 'content-type': 'application/json' }).end('{"msg":"success"}');
        if (this.delayMs > 0) setTimeout(send, this.delayMs);
        else send();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  url(appId: string): string {
    return `${this.base}/events/${encodeURIComponent(appId)}`;
  }

  private parse(appId: string, raw: Buffer, headers: IncomingHttpHeaders): ReceivedPush {
    const key = this.keys[appId];
    let text = raw.toString('utf8');
    let signatureOk = true;
    if (key) {
      const ts = String(headers['x-lark-request-timestamp'] ?? '');
      const nonce = String(headers['x-lark-request-nonce'] ?? '');
      signatureOk = ts !== '' && nonce !== '' && headers['x-lark-signature'] === signPush(ts, nonce, key, raw);
      text = new AESCipher(key).decrypt((JSON.parse(text) as { encrypt: string }).encrypt);
    }
    const body = JSON.parse(text) as Record<string, any>;
    const v2 = body.schema === '2.0';
    return {
      appId,
      id: v2 ? body.header.event_id : body.uuid,
      schema: v2 ? '2.0' : '1.0',
      type: v2 ? body.header.event_type : body.event?.type,
      body,
      event: body.event ?? {},
      headers,
      signatureOk,
      status: 0,
      at: Date.now(),
    };
  }

  /** Acknowledged pushes (answered 200), optionally of one event type, in arrival order. */
  acked(type?: string): ReceivedPush[] {
    return this.requests.filter((r) => r.status === 200 && (type === undefined || r.type === type));
  }

  /** Every request of one event type (failed attempts included). */
  ofType(type: string): ReceivedPush[] {
    return this.requests.filter((r) => r.type === type);
  }

  clear(): void {
    this.requests.length = 0;
    this.answer = () => 200;
    this.delayMs = 0;
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
  }
}
