import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateOpenApi, OPENAPI_FILE, type GeneratedSpec } from '../../scripts/write-openapi.js';

type Operation = { security?: unknown; responses?: Record<string, unknown>; summary?: string };
type Paths = Record<string, Record<string, Operation>>;

/** Fastify writes `/tenants/:tenantKey`; OpenAPI writes `/tenants/{tenantKey}`. */
const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

describe('openapi.yaml', () => {
  let generated: GeneratedSpec;
  let committed: Record<string, unknown>;

  beforeAll(async () => {
    generated = await generateOpenApi();
    committed = parse(await readFile(OPENAPI_FILE, 'utf8')) as Record<string, unknown>;
  });

  it('is exactly what the live route schemas generate (run `npm run openapi` after changing a route)', () => {
    expect(committed).toEqual(generated.document);
  });

  it('lists every registered route with its method, and nothing else', () => {
    const paths = committed.paths as Paths;
    const registered = generated.routes.map((r) => `${r.method.toLowerCase()} ${toOpenApiPath(r.url)}`).sort();
    const documented = Object.entries(paths)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`))
      .sort();
    expect(registered.length).toBeGreaterThanOrEqual(6);
    expect(documented).toEqual(registered);
    // The pinned public surface, spelled out so a route cannot vanish from both lists at once.
    for (const op of [
      'get /healthz',
      'get /readyz',
      'get /metrics',
      'post /lark/events',
      'get /api/v1/tenants',
      'get /api/v1/tenants/{tenantKey}',
      'post /api/v1/apps',
      'get /api/v1/tenants/{tenantKey}/connectors/{module}',
      'put /api/v1/tenants/{tenantKey}/connectors/{module}',
      'post /api/v1/tenants/{tenantKey}/syncs',
      'get /api/v1/tenants/{tenantKey}/syncs',
      'get /api/v1/syncs/{id}',
      'post /api/v1/syncs/{id}/cancel',
      'get /api/v1/tenants/{tenantKey}/streams/{stream}/records',
    ]) {
      expect(documented).toContain(op);
    }
  });

  it('marks every /api route as bearer-protected and documents its error answers', () => {
    const paths = committed.paths as Paths;
    for (const [p, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(op.summary, `${method} ${p} has a summary`).toBeTruthy();
        expect(op.responses, `${method} ${p} documents responses`).toBeTruthy();
        if (!p.startsWith('/api/')) continue;
        expect(op.security, `${method} ${p}`).toEqual([{ bearer: [] }]);
        for (const status of ['401', '429']) {
          expect(op.responses?.[status], `${method} ${p} documents ${status}`).toMatchObject({
            content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } },
          });
        }
      }
    }
  });
});
