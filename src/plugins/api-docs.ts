import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

export const DOCS_PREFIX = '/docs';

export interface ApiDocsOptions {
  /** The spec to serve; by default `openapi.yaml` at the package root. */
  specFile?: string;
}

/**
 * Finds `openapi.yaml` next to the package.json above this module: the repo root when run from
 * `src/plugins`, the image's /app when run from `dist/src/plugins`.
 */
export function findOpenApiFile(from = path.dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'openapi.yaml');
    if (existsSync(candidate)) return candidate;
    if (existsSync(path.join(dir, 'package.json')) || path.dirname(dir) === dir) return undefined;
  }
}

/**
 * An interactive API docs page at /docs (Swagger UI, its assets served from node_modules, so it
 * works offline), showing the committed openapi.yaml; /docs/json and /docs/yaml serve that spec.
 * Public like /healthz: the spec holds no secret, and "Try it out" asks for the bearer token.
 *
 * Register it with `app.register` (not fastify-plugin): the static @fastify/swagger below then
 * decorates only this scope, leaving the app's own (generated) spec untouched. Every route here
 * is `hide: true`, so none of them appears in that spec.
 */
export async function apiDocs(scope: FastifyInstance, opts: ApiDocsOptions = {}): Promise<void> {
  const file = opts.specFile ?? findOpenApiFile();
  if (file && existsSync(file)) {
    await scope.register(swagger, { mode: 'static', specification: { path: file, baseDir: path.dirname(file) } });
  } else {
    // The generated spec equals openapi.yaml (a test guards the drift), so an image built
    // without the file (.dockerignore leaves it out) still serves the same docs.
    scope.log.info('openapi.yaml not found next to package.json: /docs shows the spec generated from the routes');
  }
  // validatorUrl stays null (the default): no call to validator.swagger.io.
  await scope.register(swaggerUi, { routePrefix: DOCS_PREFIX });
}
