import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { expect } from 'vitest';
import type { Stack } from './stack.js';

/** Registers a webhook through the REST API: its id and its signing secret (shown once). */
export async function createWebhook(stack: Pick<Stack, 'api'>, body: Record<string, unknown>): Promise<{ id: string; secret: string }> {
  const res = await stack.api('POST', '/api/v1/webhooks', body);
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; secret: string };
}

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  payload: { type: string; timestamp: string; data: Record<string, unknown> & { tenantKey: string } };
  at: number;
}

/**
 * A webhook receiver as a customer would run one: a real HTTP server that verifies every delivery
 * with the standardwebhooks package before taking it. It can be down (connections reset, or an
 * HTTP status), slow, or fail chosen messages.
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  /** Requests that failed verification (none expected). */
  readonly rejected: Array<{ id: string; reason: string }> = [];
  /** Every request that reached the server, accepted or not. */
  requests = 0;
  private server: http.Server | undefined;
  private secrets: string[] = [];
  private mode: { kind: 'up' } | { kind: 'status'; status: number } | { kind: 'reset' } = { kind: 'up' };
  /** Answers this status (after verifying) to the messages it returns true for; they are not recorded. */
  failWhen: ((id: string, payload: Received['payload']) => number | undefined) | undefined;
  delayMs = 0;
  url = '';

  /** Secrets accepted (a rotation: both, then the new one). */
  accept(...secrets: string[]): void {
    this.secrets = secrets;
  }

  down(how: 'reset' | number = 503): void {
    this.mode = how === 'reset' ? { kind: 'reset' } : { kind: 'status', status: how };
  }

  up(): void {
    this.mode = { kind: 'up' };
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      this.requests += 1;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void (async () => {
          if (this.mode.kind === 'reset') {
            req.socket.destroy();
            return;
          }
          if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
          if (this.mode.kind === 'status') {
            res.writeHead(this.mode.status).end('down');
            return;
          }
          const body = Buffer.concat(chunks).toString('utf8');
          const headers = {
            'webhook-id': String(req.headers['webhook-id'] ?? ''),
            'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
            'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
          };
          let payload: Received['payload'] | undefined;
          let reason = 'no secret accepted';
          for (const secret of this.secrets) {
            try {
              payload = new Webhook(secret).verify(body, headers) as Received['payload'];
              break;
            } catch (err) {
              reason = (err as Error).message;
            }
          }
          if (!payload) {
            this.rejected.push({ id: headers['webhook-id'], reason });
            res.writeHead(401).end();
            return;
          }
          const fail = this.failWhen?.(headers['webhook-id'], payload);
          if (fail) {
            res.writeHead(fail).end();
            return;
          }
          this.received.push({ id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], signature: headers['webhook-signature'], body, payload, at: Date.now() });
          res.writeHead(204).end();
        })();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
    return this.url;
  }

  /** Deliveries of one tenant, in arrival order. */
  of(tenantKey: string): Received[] {
    return this.received.filter((r) => r.payload.data.tenantKey === tenantKey);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
