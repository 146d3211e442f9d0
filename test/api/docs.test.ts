import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { pino } from 'pino';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/env.js';
import { Sealer } from '../../src/crypto/sealer.js';
import { connectDatabase, type DbHandle } from '../../src/db/connect.js';
import { apiDocs, findOpenApiFile } from '../../src/plugins/api-docs.js';
import { createServices } from '../../src/services.js';
import { OPENAPI_FILE } from '../../scripts/write-openapi.js';

/** The real app, built without a database (nothing here runs a query), driven by inject. */
describe('API docs page (/docs)', () => {
  let app: FastifyInstance;
  let db: DbHandle;
  let committed: unknown;

  beforeAll(async () => {
    const config = loadConfig({ API_TOKEN: 'docs-test-api-token-0001', LARK_DOMAIN: 'feishu' });
    db = connectDatabase('postgres://docs@127.0.0.1:9/never-connected', { max: 1 });
    const services = createServices({ config, db: db.db, pool: db.pool, sealer: new Sealer(Buffer.alloc(32)), log: pino({ level: 'silent' }) });
    app = await buildApp(services, { logger: false });
    await app.ready();
    committed = parse(await readFile(OPENAPI_FILE, 'utf8'));
  });

  afterAll(async () => {
    await app?.close();
    await db?.close();
  });

  it('serves the Swagger UI page without a bearer token, with every asset local (no CDN)', async () => {
    for (const url of ['/docs', '/docs/']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain('id="swagger-ui"');
      const assets = [...res.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
      expect(assets.length).toBeGreaterThanOrEqual(5);
      for (const asset of assets) {
        expect(asset, 'no external asset').not.toMatch(/^(https?:)?\/\//);
        const resolved = url.endsWith('/') ? path.posix.join(url, asset) : asset;
        const fetched = await app.inject({ method: 'GET', url: resolved });
        expect(fetched.statusCode, resolved).toBe(200);
      }
    }
    const init = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(init.statusCode).toBe(200);
    // The page loads the spec from ./json, and no validator badge calls out to validator.swagger.io.
    expect(init.body).toContain("resolveUrl('./json')");
    expect(init.body).toContain('validatorUrl: null');
  });

  it('serves exactly the committed openapi.yaml as /docs/json and /docs/yaml', async () => {
    expect(findOpenApiFile()).toBe(OPENAPI_FILE);
    const json = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(json.statusCode).toBe(200);
    expect(json.json()).toEqual(committed);
    const yaml = await app.inject({ method: 'GET', url: '/docs/yaml' });
    expect(yaml.statusCode).toBe(200);
    expect(parse(yaml.body)).toEqual(committed);
  });

  it('keeps the docs routes out of the spec the app generates', async () => {
    const generated = app.swagger() as { paths: Record<string, unknown> };
    expect(Object.keys(generated.paths).filter((p) => p.startsWith('/docs'))).toEqual([]);
    expect(generated).toEqual(committed);
  });

  it('falls back to the spec generated from the routes when openapi.yaml is missing', async () => {
    const bare = Fastify({ logger: false });
    await bare.register(swagger, { openapi: { openapi: '3.0.3', info: { title: 'bare', version: '1' } } });
    bare.get('/ping', { schema: { summary: 'Ping' } }, async () => 'pong');
    await bare.register(apiDocs, { specFile: path.join(path.dirname(OPENAPI_FILE), 'no-such-openapi.yaml') });
    try {
      const res = await bare.inject({ method: 'GET', url: '/docs/json' });
      expect(res.statusCode).toBe(200);
      expect(Object.keys((res.json() as { paths: object }).paths)).toEqual(['/ping']);
    } finally {
      await bare.close();
    }
  });
});
