import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const METRICS_TOKEN = 'metrics-token-for-tests-0001';

describe('ops surface: /metrics token, /docs switch, unsigned pushes, body types', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Production-like: DATABASE_URL set, and no LARK_ENCRYPT_KEY.
    stack = await startStack({ encrypt: false, env: { METRICS_TOKEN, API_DOCS: 'false' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('/metrics asks for METRICS_TOKEN when it is set', async () => {
    const url = `${stack.larksync.url}/metrics`;
    const none = await fetch(url);
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ error: { code: 'unauthorized', message: 'send Authorization: Bearer <METRICS_TOKEN>' } });
    expect((await fetch(url, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } })).status).toBe(401);
    // The API token is not the metrics token.
    expect((await fetch(url, { headers: { authorization: `Bearer ${stack.env.API_TOKEN}` } })).status).toBe(401);
    const ok = await fetch(url, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('larksync_events_received_total');
  });

  it('API_DOCS=false removes /docs and its spec', async () => {
    for (const path of ['/docs', '/docs/json', '/docs/yaml']) {
      expect((await fetch(`${stack.larksync.url}${path}`)).status, path).toBe(404);
    }
  });

  it('without LARK_ENCRYPT_KEY in production: a warning at start and "pushes": "unsigned" on /readyz', async () => {
    const warning = stack.logs.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.msg.startsWith('LARK_ENCRYPT_KEY is not set'));
    expect(warning?.level).toBe(40);
    const body = await waitFor(async () => {
      const res = await fetch(`${stack.larksync.url}/readyz`);
      return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
    }, 10_000, 'ready');
    expect(body).toEqual({ status: 'ready', storeApp: 'configured', pushes: 'unsigned' });
  });

  it('does not coerce JSON bodies: "enabled": "false" is a 400 naming the field', async () => {
    for (const enabled of ['false', 0, null]) {
      const res = await stack.api('PUT', '/api/v1/tenants/tenant-x/connectors/contact', { enabled, config: {} });
      expect(res.status, String(enabled)).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('invalid_request');
      expect(body.error.message).toContain('body.enabled');
    }
    const res = await stack.api('POST', '/api/v1/apps', { appId: ['cli_x'], appSecret: 'secret-value' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('body.appId');
  });

  it('still reads numbers from the query string', async () => {
    const res = await stack.api('GET', '/api/v1/tenants?limit=2');
    expect(res.status).toBe(200);
  });
});

describe('log redaction', () => {
  it('censors secret names at the top level and one level down', () => {
    const lines: string[] = [];
    const log = createLogger(
      'info',
      new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      }),
    );
    log.info({ appSecret: 'top-secret-1', token: 'top-token-2', password: 'top-pw-3', app: { app_secret: 'nested-4' } }, 'x');
    const text = lines.join('');
    for (const secret of ['top-secret-1', 'top-token-2', 'top-pw-3', 'nested-4']) expect(text).not.toContain(secret);
    expect(JSON.parse(text)).toMatchObject({ appSecret: '[redacted]', token: '[redacted]', app: { app_secret: '[redacted]' } });
  });
});
