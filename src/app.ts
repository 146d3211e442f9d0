import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import swagger from '@fastify/swagger';
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { Logger } from 'pino';
import { closeConnectionsWhenClosing } from './plugins/close-connections.js';
import { installErrorHandling } from './plugins/error-handler.js';
import { apiDocs } from './plugins/api-docs.js';
import { healthRoutes } from './routes/health.js';
import { larkEventsRoute } from './routes/lark/events.js';
import { apiV1 } from './routes/api/v1/index.js';
import { webRoutes } from './web/index.js';
import type { Services } from './services.js';
import { ErrorBody } from './schemas/common.js';

export interface AppOptions {
  logger?: Logger | false;
  /**
   * Sees every route as it is added (the OpenAPI check compares them with the spec), except those
   * hidden from the spec (`schema.hide`: the /docs page).
   */
  onRoute?: (route: RouteOptions) => void;
}

const AJV_OPTIONS = { removeAdditional: false, useDefaults: true } as const;

/**
 * Two Ajv configurations: query strings and path parameters arrive as text, so `?limit=5` is
 * coerced to a number; JSON bodies carry their own types and are never coerced, so
 * `"enabled": "false"` is a 400 naming the field rather than quietly read as `false`.
 */
function validatorFactory() {
  // The package's types model its JTD mode too; only the plain Ajv shape is used here.
  type Compile = (route: { httpPart?: string }) => unknown;
  type Build = (externals: unknown, options: { customOptions?: object }) => Compile;
  const pool = AjvCompiler() as unknown as Build;
  return (externalSchemas: unknown, ajvOptions: { customOptions?: object }) => {
    const build = (coerceTypes: false | 'array') =>
      pool(externalSchemas, { ...ajvOptions, customOptions: { ...ajvOptions?.customOptions, ...AJV_OPTIONS, coerceTypes } });
    const body = build(false);
    const text = build('array');
    return (route: { httpPart?: string }) => (route.httpPart === 'body' ? body(route) : refuseInfinity(text(route) as Validate));
  };
}

type Validate = ((data: unknown) => boolean) & { errors?: unknown[] | null };

/**
 * Ajv coerces text such as `1e400` to Infinity and then skips `minimum`/`maximum` for numbers that
 * are not finite (its range checks are guarded by `isFinite`), so `?limit=1e400` passed validation
 * and reached the database as Infinity (a 500). A coerced value that is not finite is refused here,
 * as the 400 any other out-of-range number gets.
 */
function refuseInfinity(validate: Validate): Validate {
  const wrapped: Validate = (data: unknown) => {
    const ok = validate(data);
    wrapped.errors = validate.errors;
    if (!ok || data === null || typeof data !== 'object') return ok;
    for (const [key, value] of Object.entries(data)) {
      const values: unknown[] = Array.isArray(value) ? value : [value];
      if (values.some((v) => typeof v === 'number' && !Number.isFinite(v))) {
        wrapped.errors = [{ instancePath: `/${key}`, schemaPath: '', keyword: 'maximum', params: {}, message: 'must be a finite number within its range' }];
        return false;
      }
    }
    return true;
  };
  return wrapped;
}

/** Builds the HTTP app. Only wiring lives here; `server.ts` is what listens. */
export async function buildApp(services: Services, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger === false ? undefined : (opts.logger ?? services.log),
    logger: opts.logger === false ? false : undefined,
    bodyLimit: 1024 * 1024,
    // Above the schemas' own limits (tenantKey: 128), so they, not the router's 414, answer.
    routerOptions: { maxParamLength: 256 },
    // Whose X-Forwarded-For is believed (TRUST_PROXY): by default nobody's, so a client cannot pick
    // its own address, and with it a fresh rate-limit bucket per request. Behind Fly's proxy: one hop.
    trustProxy: trustProxyOption(services.config.trustProxy),
    return503OnClosing: true,
    schemaController: { compilersFactory: { buildValidator: validatorFactory() } },
    // The router answers these itself, before any error handler: keep them in our error envelope.
    frameworkErrors: (err: { code?: string }, _request: unknown, reply: { code(n: number): { send(b: unknown): void } }) => {
      if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
        return reply.code(414).send({ error: { code: 'path_too_long', message: 'a path segment is longer than 256 characters' } });
      }
      return reply.code(400).send({ error: { code: 'bad_url', message: 'the request path is not a valid URL; check its percent-encoding' } });
    },
    // Requests too malformed to route (bad header bytes, header overflow, conflicting lengths):
    // Node answers before Fastify sees them, so the same envelope is written by hand.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      const body = JSON.stringify({
        error: tooLarge
          ? { code: 'headers_too_large', message: 'request headers are too large' }
          : { code: 'malformed_http', message: 'the request is not valid HTTP/1.1' },
      });
      socket.end(
        `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\n` +
          `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    },
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  const onRoute = opts.onRoute;
  if (onRoute) {
    app.addHook('onRoute', (route) => {
      if (!(route.schema as { hide?: boolean } | undefined)?.hide) onRoute(route);
    });
  }
  installErrorHandling(app);
  closeConnectionsWhenClosing(app);
  app.addSchema(ErrorBody);
  await app.register(swagger, {
    // Shared schemas keep their $id as the component name (the default is def-0, def-1, ...).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'larksync',
        version: '1',
        description: 'Internal REST API and Lark event endpoint of larksync. Errors are { "error": { "code", "message" } }.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API_TOKEN' } },
      },
    },
    transform: ({ schema, url }) => {
      const s = { ...(schema as Record<string, unknown>) };
      if (url.startsWith('/api/')) s.security = [{ bearer: [] }];
      return { schema: s as typeof schema, url };
    },
  });

  await app.register(healthRoutes(services));
  await app.register(larkEventsRoute(services));
  await app.register(apiV1(services), { prefix: '/api/v1' });
  await app.register(webRoutes(services));
  // API_DOCS=false: no /docs page (the spec lists every route, which some deployments keep private).
  if (services.config.apiDocs) await app.register(apiDocs);
  return app;
}

/**
 * A hop count becomes a function: Fastify 5 ignores a numeric trustProxy on purpose (it trusts no
 * hop, since a count cannot tell a proxy from a client that connects directly). With TRUST_PROXY=n
 * the operator states that every connection comes through n proxies (on Fly, only Fly's proxy can
 * reach the machine), so the n nearest hops are believed, whatever their addresses.
 */
function trustProxyOption(trust: number | string[]): ((address: string, hop: number) => boolean) | string[] | false {
  if (Array.isArray(trust)) return trust.length > 0 ? trust : false;
  if (trust <= 0) return false;
  return (_address, hop) => hop < trust;
}
