import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition (enough of it for counters). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k as string] = v as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Sum of the samples of `name` whose labels include `labels`. */
const total = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);

describe('GET /metrics', () => {
  let stack: Stack;
  const scrape = async () => {
    const res = await fetch(`${stack.larksync.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    return { text, samples: parseMetrics(text) };
  };

  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('declares the pinned counters', async () => {
    const { text } = await scrape();
    for (const name of [
      'larksync_events_received_total',
      'larksync_events_rejected_total',
      'larksync_events_deduped_total',
      'larksync_token_mints_total',
      'larksync_upstream_calls_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} counter`);
    }
  });

  it('moves each counter with real traffic through the simulator', async () => {
    await whenReady(stack);

    // Received: the startup ticket plus an app_open; the token mints run from the app_open job.
    const open = await stack.sim.appOpen(STORE_APP.appId, 'tenant-metrics');
    expect(open.status).toBe(200);
    await waitFor(
      async () => (await stack.larksync.services.tokens.health('tenant', STORE_APP.appId, 'tenant-metrics')).status === 'valid',
      10_000,
      'tenant token',
    );

    // Deduped: Lark redelivers the same push.
    expect((await stack.sim.redeliver(open.uuid)).status).toBe(200);

    // Rejected: a tampered signature, and a push carrying the wrong verification token.
    const plaintext = JSON.stringify({ uuid: 'u-forged', token: STORE_APP.verificationToken, ts: '1', type: 'event_callback', event: { type: 'app_open' } });
    const wire = stack.sim.wireFormat(STORE_APP.appId, plaintext);
    const forged = await fetch(stack.eventsUrl, {
      method: 'POST',
      body: wire.body,
      headers: { ...wire.headers, 'x-lark-signature': 'f'.repeat(64) },
    });
    expect(forged.status).toBe(401);
    const wrongToken = stack.sim.wireFormat(STORE_APP.appId, plaintext.replace(STORE_APP.verificationToken, 'not-the-token'));
    expect((await fetch(stack.eventsUrl, { method: 'POST', body: wrongToken.body, headers: wrongToken.headers })).status).toBe(401);

    // Upstream calls with several outcomes: bad credentials, success, and a domain where nothing listens.
    stack.sim.addApp({ appId: 'cli_metrics_custom', appSecret: 'metrics-custom-secret', kind: 'custom', verificationToken: 'v', tenantKey: 'tenant-metrics-custom' });
    expect((await stack.api('POST', '/api/v1/apps', { appId: 'cli_metrics_custom', appSecret: 'wrong-secret' })).status).toBe(400);
    expect((await stack.api('POST', '/api/v1/apps', { appId: 'cli_metrics_custom', appSecret: 'metrics-custom-secret' })).status).toBe(201);
    const closed = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const unreachable = await stack.api('POST', '/api/v1/apps', { appId: 'cli_metrics_custom', appSecret: 'x', domain: `http://127.0.0.1:${closed}` });
    expect(unreachable.status).toBe(502);

    const { samples } = await scrape();
    expect(total(samples, 'larksync_events_received_total', { type: 'app_ticket' })).toBe(1);
    expect(total(samples, 'larksync_events_received_total', { type: 'app_open' })).toBe(1);
    expect(total(samples, 'larksync_events_received_total')).toBe(2);
    expect(total(samples, 'larksync_events_deduped_total')).toBe(1);
    expect(total(samples, 'larksync_events_rejected_total', { reason: 'invalid_signature' })).toBe(1);
    expect(total(samples, 'larksync_events_rejected_total', { reason: 'invalid_token' })).toBe(1);
    expect(total(samples, 'larksync_events_rejected_total')).toBe(2);
    expect(total(samples, 'larksync_token_mints_total', { kind: 'app', outcome: 'success' })).toBe(1);
    // The store tenant's mint and the custom app's proof-of-credentials token.
    expect(total(samples, 'larksync_token_mints_total', { kind: 'tenant', outcome: 'success' })).toBe(2);
    expect(total(samples, 'larksync_token_mints_total', { outcome: 'failure' })).toBe(0);

    const calls = (endpoint: string, code?: string) =>
      total(samples, 'larksync_upstream_calls_total', { endpoint, ...(code === undefined ? {} : { code }) });
    expect(calls(AUTH_PATHS.ticketResend, '0')).toBe(1);
    expect(calls(AUTH_PATHS.appAccessToken, '0')).toBe(1);
    expect(calls(AUTH_PATHS.tenantAccessToken, '0')).toBe(1);
    expect(calls(AUTH_PATHS.tenantAccessTokenInternal, '10015')).toBe(1);
    expect(calls(AUTH_PATHS.tenantAccessTokenInternal, '0')).toBe(1);
    expect(calls(AUTH_PATHS.tenantAccessTokenInternal, 'transport_error')).toBe(1);
    expect(calls(AUTH_PATHS.tenantQuery, '0')).toBe(1);
    // Every call that reached Lark is counted once, under the code Lark answered.
    for (const path of Object.values(AUTH_PATHS)) {
      const reached = calls(path) - calls(path, 'transport_error');
      expect(reached, path).toBe(stack.sim.count(path));
      for (const code of new Set(stack.sim.callLog.filter((c) => c.path === path).map((c) => c.code))) {
        expect(calls(path, String(code)), `${path} code ${code}`).toBe(stack.sim.count(path, code));
      }
    }
  });
});
