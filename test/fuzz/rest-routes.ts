import type { FastifyInstance } from 'fastify';
import type { JsonSchema } from './schema-values.js';

/** One route of the live app, with what the OpenAPI document says about its input. */
export interface LiveRoute {
  method: string;
  /** Fastify syntax: `/api/v1/tenants/:tenantKey`, `*` for a wildcard. */
  url: string;
  /** Path and query parameter schemas, by name (empty for routes hidden from the spec). */
  params: Record<string, JsonSchema>;
  query: Record<string, JsonSchema>;
  body?: JsonSchema;
  documented: boolean;
}

interface OpenApiOperation {
  parameters?: Array<{ name: string; in: string; schema?: JsonSchema; required?: boolean }>;
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}
type OpenApiDocument = { paths?: Record<string, Record<string, OpenApiOperation>> };

/**
 * Parses `app.printRoutes({ commonPrefix: false })`: a tree whose lines are `├── segment (GET, HEAD)`,
 * indented four characters per level. It lists every route, the ones hidden from the spec too.
 */
export function parseRouteTree(tree: string): Array<{ method: string; url: string }> {
  const out: Array<{ method: string; url: string }> = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^(.*?)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = Math.round((m[1] ?? '').length / 4);
    stack.length = depth;
    stack.push(m[2] ?? '');
    const url = stack.join('');
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) out.push({ method, url });
  }
  return out;
}

const toOpenApi = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** Every route the running app serves (HEAD routes Fastify adds for GETs included), with their schemas. */
export function liveRoutes(app: FastifyInstance): LiveRoute[] {
  const doc = (app as unknown as { swagger(): OpenApiDocument }).swagger();
  return parseRouteTree(app.printRoutes({ commonPrefix: false })).map(({ method, url }) => {
    const op = doc.paths?.[toOpenApi(url)]?.[(method === 'HEAD' ? 'GET' : method).toLowerCase()];
    const params: Record<string, JsonSchema> = {};
    const query: Record<string, JsonSchema> = {};
    for (const p of op?.parameters ?? []) {
      if (p.in === 'path') params[p.name] = p.schema ?? { type: 'string' };
      if (p.in === 'query') query[p.name] = p.schema ?? { type: 'string' };
    }
    for (const name of url.match(/:([A-Za-z0-9_]+)/g) ?? []) params[name.slice(1)] ??= { type: 'string' };
    return { method, url, params, query, body: op?.requestBody?.content?.['application/json']?.schema, documented: op !== undefined };
  });
}
