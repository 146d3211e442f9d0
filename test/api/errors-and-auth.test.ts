import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import { rawRequest } from '../helpers/raw-http.js';

interface ErrorJson {
  error: { code: string; message: string };
}

describe('REST API: authentication and the error envelope', () => {
  let stack: Stack;
  let base: string;
  const token = () => stack.env.API_TOKEN as string;

  beforeAll(async () => {
    stack = await startStack();
    base = stack.larksync.url;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  async function expectError(res: Response, status: number, code: string): Promise<string> {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as ErrorJson;
    expect(Object.keys(body)).toEqual(['error']);
    expect(body.error.code).toBe(code);
    expect(typeof body.error.message).toBe('string');
    expect(body.error.message.length).toBeGreaterThan(0);
    return body.error.message;
  }

  it('answers 401 unauthorized without a valid bearer token, and never echoes what was sent', async () => {
    const guess = 'guess-0123456789abcdef';
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: `Bearer ${guess}` },
      { authorization: `Basic ${Buffer.from(`x:${token()}`).toString('base64')}` },
      { authorization: `Bearer ${token()}x` },
      { authorization: `Bearer ${token().slice(0, -1)}` },
      { authorization: 'Bearer ' },
      { authorization: token() },
    ];
    for (const headers of attempts) {
      const res = await fetch(`${base}/api/v1/tenants`, { headers });
      const message = await expectError(res, 401, 'unauthorized');
      expect(message).not.toContain(guess);
      expect(message).not.toContain(token());
    }
    // A POST is refused before its body is even looked at.
    const post = await fetch(`${base}/api/v1/apps`, { method: 'POST', body: '{not json', headers: { 'content-type': 'application/json' } });
    await expectError(post, 401, 'unauthorized');
  });

  it('accepts the token with the scheme in any case', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const res = await fetch(`${base}/api/v1/tenants`, { headers: { authorization: `${scheme} ${token()}` } });
      expect(res.status).toBe(200);
    }
  });

  it('answers 503 api_disabled on every API route when no API_TOKEN is configured', async () => {
    const { services } = stack.larksync;
    const app = await buildApp({ ...services, config: { ...services.config, apiToken: undefined } }, { logger: false });
    try {
      for (const [method, url] of [['GET', '/api/v1/tenants'], ['GET', '/api/v1/tenants/t1'], ['POST', '/api/v1/apps']] as const) {
        const res = await app.inject({ method, url, headers: { authorization: 'Bearer anything-at-all-here' } });
        expect(res.statusCode).toBe(503);
        expect(res.json()).toEqual({ error: { code: 'api_disabled', message: expect.stringContaining('API_TOKEN') } });
      }
      // Ops endpoints do not depend on the API token.
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('answers 404 not_found as JSON for unknown routes and methods, inside and outside /api/v1', async () => {
    const auth = { authorization: `Bearer ${token()}` };
    await expectError(await fetch(`${base}/api/v1/nope`, { headers: auth }), 404, 'not_found');
    await expectError(await fetch(`${base}/api/v1/tenants`, { method: 'DELETE', headers: auth }), 404, 'not_found');
    await expectError(await fetch(`${base}/api/v2/tenants`, { headers: auth }), 404, 'not_found');
    const message = await expectError(await fetch(`${base}/nope?secret=1`), 404, 'not_found');
    expect(message).toBe('no route for GET /nope');
  });

  it('answers 400 invalid_request naming the bad field, without echoing its value', async () => {
    const cases: Array<[string, string, unknown, string]> = [
      ['GET', '/api/v1/tenants?limit=0', undefined, 'querystring.limit: must be >= 1'],
      ['GET', '/api/v1/tenants?limit=501', undefined, 'querystring.limit: must be <= 500'],
      ['GET', '/api/v1/tenants?limit=lots', undefined, 'querystring.limit: must be integer'],
      // A number too large for a double coerces to Infinity: refused as not an integer, never a 500.
      ['GET', '/api/v1/tenants?limit=1e400', undefined, 'querystring.limit: must be'],
      ['GET', '/api/v1/tenants/t1/writes?limit=1e400', undefined, 'querystring.limit: must be'],
      ['GET', '/api/v1/tenants/t1/writes?limit=-1e400', undefined, 'querystring.limit: must be'],
      ['GET', '/api/v1/tenants?status=gone', undefined, 'querystring.status: must be one of: active, paused, uninstalled'],
      ['GET', `/api/v1/tenants/${'k'.repeat(129)}`, undefined, 'params.tenantKey: must NOT have more than 128 characters'],
      ['POST', '/api/v1/apps', { appId: 'cli_a' }, 'body.appSecret: is required'],
      ['POST', '/api/v1/apps', { appSecret: 'secret-value-abc' }, 'body.appId: is required'],
      ['POST', '/api/v1/apps', { appId: 'cli a!', appSecret: 'secret-value-abc' }, 'body.appId: must match pattern'],
      ['POST', '/api/v1/apps', { appId: 'cli_a', appSecret: { value: 'x' } }, 'body.appSecret: must be string'],
      ['POST', '/api/v1/apps', { appId: 'cli_a', appSecret: 'secret-value-abc', tenant: 'x' }, 'body.tenant: is not a known property'],
      ['POST', '/api/v1/apps', [], 'body: must be object'],
    ];
    for (const [method, path, body, expected] of cases) {
      const res = await stack.api(method, path, body);
      const message = await expectError(res, 400, 'invalid_request');
      expect(message, `${method} ${path}`).toContain(expected);
      expect(message).not.toContain('secret-value-abc');
    }
    // Nothing was registered by any of these.
    const apps = await stack.db.db.selectFrom('apps').select('app_id').execute();
    expect(apps.map((a) => a.app_id)).toEqual([STORE_APP.appId]);
  });

  it('answers 400 malformed_json for a body that is not JSON, and 415 for another content type', async () => {
    const headers = { authorization: `Bearer ${token()}`, 'content-type': 'application/json' };
    for (const body of ['{"appId": "cli_a", ', '{appId: cli_a}', '']) {
      const res = await fetch(`${base}/api/v1/apps`, { method: 'POST', headers, body });
      await expectError(res, 400, 'malformed_json');
    }
    const res = await fetch(`${base}/api/v1/apps`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'text/plain' },
      body: 'appId=cli_a',
    });
    await expectError(res, 415, 'unsupported_media_type');
  });

  it('answers 413 payload_too_large for a body over 1 MiB', async () => {
    const body = JSON.stringify({ appId: 'cli_big', appSecret: 'x'.repeat(1024 * 1024) });
    const res = await fetch(`${base}/api/v1/apps`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
      body,
    });
    await expectError(res, 413, 'payload_too_large');
  });

  it('answers 500 internal_error without internals when the database fails, and logs the cause', async () => {
    // A real failure: the table the handler reads is gone for a moment.
    await sql`alter table tenants rename to tenants_away`.execute(stack.db.db);
    try {
      for (const path of ['/api/v1/tenants', '/api/v1/tenants/t-anything']) {
        const res = await stack.api('GET', path);
        const text = await res.text();
        expect(res.status).toBe(500);
        expect(JSON.parse(text)).toEqual({ error: { code: 'internal_error', message: 'internal error; see the server log' } });
        for (const leak of ['tenants', 'relation', 'select', 'stack', 'at ', '.ts']) expect(text).not.toContain(leak);
      }
    } finally {
      await sql`alter table tenants_away rename to tenants`.execute(stack.db.db);
    }
    expect(stack.logs.some((l) => l.includes('unhandled error') && l.includes('tenants'))).toBe(true);
    expect((await stack.api('GET', '/api/v1/tenants')).status).toBe(200);
  });

  it('answers malformed HTTP and unroutable paths with the error envelope', async () => {
    const nul = await rawRequest(base, { method: 'GET', target: '/healthz', headers: [['x-bad', 'a\u0000b']] });
    expect(nul.status).toBe(400);
    expect(JSON.parse(nul.body.toString())).toEqual({ error: { code: 'malformed_http', message: expect.any(String) } });
    const overflow = await rawRequest(base, { method: 'GET', target: '/healthz', headers: [['x-big', 'y'.repeat(20_000)]] });
    expect(overflow.status).toBe(431);
    expect(JSON.parse(overflow.body.toString()).error.code).toBe('headers_too_large');
    const badUrl = await fetch(`${base}/healthz%`);
    expect(badUrl.status).toBe(400);
    expect(((await badUrl.json()) as { error: { code: string } }).error.code).toBe('bad_url');
    const longParam = await fetch(`${base}/api/v1/tenants/${'k'.repeat(300)}`, { headers: { authorization: `Bearer ${stack.env.API_TOKEN}` } });
    expect(longParam.status).toBe(414);
    expect(((await longParam.json()) as { error: { code: string } }).error.code).toBe('path_too_long');
  });

  it('refuses a U+0000 in the path or query of the routes outside /api/v1 with a 4xx, never a 500', async () => {
    // Postgres text cannot hold U+0000: such a value reaching a lookup failed the query (a 500).
    const cases: Array<[string, string, string | undefined]> = [
      ['POST', '/lark/events/%00', '{"encrypt":"x"}'],
      ['POST', '/lark/events/cli_a%00b', '{"encrypt":"x"}'],
      ['GET', '/auth/lark/callback?code=abc&state=%00', undefined],
      ['GET', '/auth/lark/login?tenant=%00', undefined],
      ['GET', '/admin?x=%00', undefined],
    ];
    for (const [method, path, body] of cases) {
      const res = await fetch(`${base}${path}`, { method, ...(body ? { body, headers: { 'content-type': 'application/json' } } : {}), redirect: 'manual' });
      expect(res.status, `${method} ${path}`).toBeLessThan(500);
    }
  });
});
