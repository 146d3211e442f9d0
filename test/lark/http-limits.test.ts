import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LarkHttp, MAX_LARK_BODY_BYTES } from '../../src/lark/http.js';
import { LarkResponseRefusedError, LarkTransportError } from '../../src/lark/errors.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { SyncLarkClient, defaultRetryPolicy } from '../../src/sync/sync-lark-client.js';
import type { Services } from '../../src/services.js';
import type { TenantTokens } from '../../src/tokens/tokens.service.js';
import { perSecond, type Pacer } from '../../src/sync/pacer.js';
import { SyncError } from '../../src/sync/sync-errors.js';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
});

/** A real HTTP server on 127.0.0.1 counting its requests. */
async function serve(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}

/** A valid Lark JSON answer of about `bytes` bytes, sent in 64 KiB chunks without a content-length. */
function streamBigAnswer(res: http.ServerResponse, bytes: number, declareLength = false): void {
  const head = '{"code":0,"data":{"pad":"';
  const tail = '"}}';
  const padLength = bytes - head.length - tail.length;
  if (declareLength) res.setHeader('content-length', String(bytes));
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write(head);
  const chunk = 'x'.repeat(64 * 1024);
  let left = padLength;
  const pump = () => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.slice(0, left);
      left -= piece.length;
      if (!res.write(piece)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end(tail);
  };
  res.on('error', () => undefined);
  pump();
}

describe('LarkHttp: bounded bodies, no redirects, bounded labels', () => {
  it('reads a body up to the cap, and refuses one over it (streamed or declared) with a non-retryable error', async () => {
    const metrics = createMetrics();
    const lark = new LarkHttp(metrics, { maxBodyBytes: 256 * 1024 });
    const small = await serve((_req, res) => streamBigAnswer(res, 200 * 1024));
    const res = await lark.call<{ data: { pad: string } }>(small.url, { method: 'GET', path: '/open-apis/x' });
    expect(res.body.data.pad).toHaveLength(200 * 1024 - 28);

    for (const declareLength of [false, true]) {
      const big = await serve((_req, r) => streamBigAnswer(r, 300 * 1024, declareLength));
      const err = await lark.call(big.url, { method: 'GET', path: '/open-apis/x', endpoint: 'big' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LarkResponseRefusedError);
      expect(err).not.toBeInstanceOf(LarkTransportError);
      expect(err).toMatchObject({ reason: 'body_too_large', retryable: false, httpStatus: 200 });
    }
    const text = await metrics.registry.metrics();
    expect(text).toContain('larksync_upstream_calls_total{endpoint="big",code="body_too_large"} 2');
  });

  it('caps at 32 MiB by default', async () => {
    expect(MAX_LARK_BODY_BYTES).toBe(32 * 1024 * 1024);
    const big = await serve((_req, res) => streamBigAnswer(res, MAX_LARK_BODY_BYTES + 1024 * 1024));
    const err = await new LarkHttp(createMetrics()).call(big.url, { method: 'GET', path: '/open-apis/x' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'LarkResponseRefusedError', reason: 'body_too_large' });
  });

  it('a sync call over the cap fails at once instead of being retried', async () => {
    const big = await serve((_req, res) => streamBigAnswer(res, 300 * 1024));
    const metrics = createMetrics();
    const services = { http: new LarkHttp(metrics, { maxBodyBytes: 256 * 1024 }), metrics } as unknown as Services;
    const tokens = {
      tenantKey: 't-1',
      app: { appId: 'cli_x' },
      withToken: (call: (token: string, baseUrl: string) => Promise<unknown>) => call('t-token', big.url),
    } as unknown as TenantTokens;
    const pacer = { take: async () => undefined } as unknown as Pacer;
    const client = new SyncLarkClient(services, tokens, pacer, { 'bitable.records.search': perSecond(20) }, { upstreamCalls: 0, throttledWaits: 0 }, async () => undefined, {
      ...defaultRetryPolicy,
      baseDelayMs: 1,
      maxDelayMs: 5,
    });
    const err = await client.call('bitable.records.search', { method: 'POST', path: '/open-apis/bitable/search', body: {} }).catch((e: unknown) => e);
    // The run fails with a stable class instead of retrying a body that would be refused again.
    expect(err).toBeInstanceOf(SyncError);
    expect(err).toMatchObject({ errorClass: 'upstream_refused' });
    expect(big.hits).toHaveLength(1);
  });

  it('never follows a redirect, so a bearer token or body is not sent to its target', async () => {
    const target = await serve((_req, res) => res.end('{"code":0}'));
    const redirector = await serve((_req, res) => {
      res.writeHead(308, { location: `${target.url}/open-apis/steal` });
      res.end();
    });
    const metrics = createMetrics();
    const err = await new LarkHttp(metrics)
      .call(redirector.url, { method: 'POST', path: '/open-apis/auth', endpoint: 'auth', body: { app_secret: 's' }, bearer: 'b' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'LarkResponseRefusedError', reason: 'redirect', httpStatus: 308 });
    expect(redirector.hits).toHaveLength(1);
    expect(target.hits).toEqual([]);
    expect(await metrics.registry.metrics()).toContain('larksync_upstream_calls_total{endpoint="auth",code="redirect"} 1');
  });

  it('counts codes it does not know as `other`, so an upstream cannot add metric series', async () => {
    let n = 0;
    const odd = await serve((_req, res) => {
      n += 1;
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 900000000 + n, msg: 'made up' }));
    });
    const metrics = createMetrics();
    const lark = new LarkHttp(metrics);
    for (let i = 0; i < 5; i++) await lark.call(odd.url, { method: 'GET', path: '/open-apis/x', endpoint: 'odd' }).catch(() => undefined);
    // A known one keeps its own label.
    const known = await serve((_req, res) => res.end(JSON.stringify({ code: 99991663, msg: 'invalid token' })));
    await lark.call(known.url, { method: 'GET', path: '/open-apis/x', endpoint: 'odd' }).catch(() => undefined);
    const text = await metrics.registry.metrics();
    expect(text).toContain('larksync_upstream_calls_total{endpoint="odd",code="other"} 5');
    expect(text).toContain('larksync_upstream_calls_total{endpoint="odd",code="99991663"} 1');
    expect(text).not.toMatch(/code="9000000\d\d"/);
  });
});
