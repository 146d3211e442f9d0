import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { startStack, type Stack } from '../helpers/stack.js';

const LIMIT = 5;

describe('REST API rate limit (API_RATE_LIMIT per minute per client)', () => {
  let stack: Stack;
  const auth = () => ({ authorization: `Bearer ${stack.env.API_TOKEN}` });
  /** A request from a given peer address, through the real app (same limiter store as HTTP). */
  const from = (remoteAddress: string, headers: Record<string, string> = {}) =>
    stack.larksync.app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress, headers: { ...auth(), ...headers } });

  beforeAll(async () => {
    stack = await startStack({ env: { API_RATE_LIMIT: String(LIMIT) } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('lets LIMIT requests through, then answers 429 rate_limited with retry-after', async () => {
    for (let i = 1; i <= LIMIT; i++) {
      const res = await stack.api('GET', '/api/v1/tenants');
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit')).toBe(String(LIMIT));
      expect(res.headers.get('x-ratelimit-remaining')).toBe(String(LIMIT - i));
    }
    const limited = await stack.api('GET', '/api/v1/tenants');
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(await limited.json()).toEqual({
      error: { code: 'rate_limited', message: expect.stringContaining(`${LIMIT} requests per minute`) },
    });
    // Every /api/v1 route shares the client's budget.
    expect((await stack.api('GET', '/api/v1/tenants/t-x')).status).toBe(429);
    expect((await stack.api('POST', '/api/v1/apps', { appId: 'cli_x', appSecret: 'y' })).status).toBe(429);
  });

  it('does not limit the ops endpoints', async () => {
    for (let i = 0; i < LIMIT * 2; i++) {
      expect((await fetch(`${stack.larksync.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${stack.larksync.url}/metrics`)).status).toBe(200);
    }
  });

  it('counts unauthenticated requests too, so bearer tokens cannot be guessed at full speed', async () => {
    const peer = '203.0.113.10';
    for (let i = 1; i <= LIMIT; i++) {
      const res = await from(peer, { authorization: `Bearer guess-number-${i}-abcdefgh` });
      expect(res.statusCode).toBe(401);
      expect(res.headers['x-ratelimit-remaining']).toBe(String(LIMIT - i));
    }
    const res = await from(peer);
    expect(res.statusCode).toBe(429);
    expect(res.json()).toMatchObject({ error: { code: 'rate_limited' } });
  });

  it('keeps one budget per client address', async () => {
    for (let i = 0; i < LIMIT; i++) expect((await from('203.0.113.20')).statusCode).toBe(200);
    expect((await from('203.0.113.20')).statusCode).toBe(429);
    expect((await from('203.0.113.21')).statusCode).toBe(200);
  });

  it('ignores X-Forwarded-For from a public peer, so a client cannot mint itself fresh budgets', async () => {
    const peer = '203.0.113.30';
    for (let i = 0; i < LIMIT; i++) expect((await from(peer, { 'x-forwarded-for': `198.51.100.${i}` })).statusCode).toBe(200);
    expect((await from(peer, { 'x-forwarded-for': '198.51.100.99' })).statusCode).toBe(429);
  });

  it('by default (TRUST_PROXY unset) believes no proxy, not even a private peer', async () => {
    // A client inside the VPC or on the Docker bridge cannot pick its own address either.
    const peer = '172.16.9.9';
    for (let i = 0; i < LIMIT; i++) expect((await from(peer, { 'x-forwarded-for': `198.51.100.${100 + i}` })).statusCode).toBe(200);
    expect((await from(peer, { 'x-forwarded-for': '198.51.100.199' })).statusCode).toBe(429);
  });

  describe.each([
    ['a hop count (Fly: TRUST_PROXY=1)', 1],
    ['a CIDR list', ['172.16.0.0/12']],
  ] as const)('behind a proxy trusted by %s', (_label, trustProxy) => {
    let app: FastifyInstance;
    beforeAll(async () => {
      const services = stack.larksync.services;
      app = await buildApp({ ...services, config: { ...services.config, trustProxy: trustProxy as number | string[] } }, { logger: false });
      await app.ready();
    });
    afterAll(async () => {
      await app?.close();
    });
    const via = (remoteAddress: string, xff: string) =>
      app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress, headers: { ...auth(), 'x-forwarded-for': xff } });

    it('limits the client the proxy names, not the proxy', async () => {
      const proxy = '172.16.4.2';
      const client = '198.51.100.40';
      for (let i = 0; i < LIMIT; i++) expect((await via(proxy, client)).statusCode).toBe(200);
      expect((await via(proxy, client)).statusCode).toBe(429);
      // A forged entry to the left of what the proxy appended does not help.
      expect((await via(proxy, `10.9.9.9, ${client}`)).statusCode).toBe(429);
      // Another client behind the same proxy has its own budget.
      expect((await via(proxy, '198.51.100.41')).statusCode).toBe(200);
    });
  });
});
