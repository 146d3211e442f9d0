import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { lookup } from 'node:dns/promises';
import { hostname } from 'node:os';
import ipaddr from 'ipaddr.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { AppsService } from '../../src/apps/apps.service.js';
import { AppError } from '../../src/errors.js';
import { startStack, type Stack } from '../helpers/stack.js';

/** A server that records every request and answers each with `answer`. */
async function trapServer(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const hits: Array<{ method: string; url: string }> = [];
  const server = http.createServer((req, res) => {
    hits.push({ method: req.method ?? '', url: req.url ?? '' });
    req.resume();
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, hits, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('custom app domain: no pivot to internal hosts', () => {
  let stack: Stack;
  let production: AppsService;
  const SECRET = 'custom-secret-never-sent-elsewhere';

  beforeAll(async () => {
    stack = await startStack();
    const s = stack.larksync.services;
    // The same service as in production (DATABASE_URL set, ALLOW_PRIVATE_LARK_DOMAINS unset).
    production = new AppsService(s.db, s.sealer, s.http, s.tokens, s.tenants, { ...s.config, allowPrivateLarkDomains: false });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  async function refusal(service: AppsService, domain: string): Promise<AppError> {
    try {
      await service.registerCustomApp({ appId: 'cli_pivot_0001', appSecret: SECRET, domain });
    } catch (err) {
      return err as AppError;
    }
    throw new Error(`registration with ${domain} was accepted`);
  }

  it('in production refuses http://, private, loopback and link-local hosts, and any path, query or credentials, before any call', async () => {
    const trap = await trapServer((_req, res) => res.end('{}'));
    try {
      const port = new URL(trap.url).port;
      for (const domain of [
        trap.url,
        `https://127.0.0.1:${port}`,
        'https://169.254.169.254',
        'https://10.0.0.7',
        'https://192.168.1.1:8443',
        'https://[::1]',
        'https://[fd00::1]',
        'https://[::ffff:127.0.0.1]',
        'https://localhost',
        'https://metadata.localhost.',
        'http://open.example.com',
        'https://open.example.com/latest/meta-data?a=',
        'https://open.example.com/?',
        'https://open.example.com#x',
        'https://admin:pw@open.example.com',
      ]) {
        const err = await refusal(production, domain);
        expect(err, domain).toBeInstanceOf(AppError);
        expect(err.statusCode, domain).toBe(400);
        expect(err.code, domain).toBe('invalid_domain');
        expect(err.message, domain).toMatch(/^domain /);
        expect(err.message, domain).not.toContain(domain);
      }
      expect(trap.hits).toEqual([]);
      expect(await stack.db.db.selectFrom('apps').select('app_id').where('app_id', '=', 'cli_pivot_0001').execute()).toEqual([]);
    } finally {
      await trap.close();
    }
  });

  it('in production refuses a host name that resolves to a private address', async () => {
    // This machine's own name resolves to a loopback or private address on most hosts (/etc/hosts).
    const name = hostname();
    const addresses = await lookup(name, { all: true }).catch(() => []);
    const local = addresses.length > 0 && addresses.some((a) => ipaddr.process(a.address).range() !== 'unicast');
    if (!local) return;
    const err = await refusal(production, `https://${name}`);
    expect(err.code).toBe('invalid_domain');
    expect(err.message).toContain('resolves to a private');
  });

  it('never follows a redirect: the app secret is not re-sent to where it points', async () => {
    stack.sim.resetCounts();
    // A 307 keeps method and body: following it would POST the secret to the target.
    const redirector = await trapServer((_req, res) => {
      res.writeHead(307, { location: `${stack.sim.url}${AUTH_PATHS.tenantAccessTokenInternal}` });
      res.end();
    });
    try {
      const res = await stack.api('POST', '/api/v1/apps', { appId: 'cli_redirect_0001', appSecret: SECRET, domain: redirector.url });
      expect(res.status).toBe(502);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('lark_unreachable');
      expect(body.error.message).toContain('redirect');
      expect(redirector.hits).toHaveLength(1);
      expect(stack.sim.count(AUTH_PATHS.tenantAccessTokenInternal)).toBe(0);
    } finally {
      await redirector.close();
    }
  });

  it('does not echo what the domain answered', async () => {
    const liar = await trapServer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 10014, msg: 'internal-banner: redis 6.2 on 10.0.0.9' }));
    });
    try {
      const res = await stack.api('POST', '/api/v1/apps', { appId: 'cli_liar_0001', appSecret: SECRET, domain: liar.url });
      expect(res.status).toBe(400);
      const text = await res.text();
      expect(text).toContain('10014');
      expect(text).not.toContain('internal-banner');
      expect(text).not.toContain('10.0.0.9');
    } finally {
      await liar.close();
    }
  });
});
