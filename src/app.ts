import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import { closeConnectionsWhenClosing } from './plugins/close-connections.js';
import { installErrorHandling } from './plugins/error-handler.js';
import { healthRoutes } from './routes/health.js';
import { larkEventsRoute } from './routes/lark/events.js';
import { apiV1 } from './routes/api/v1/index.js';
import type { Services } from './services.js';
import { ErrorBody } from './schemas/common.js';

export interface AppOptions {
  logger?: Logger | false;
  /** Sees every route as it is added (the OpenAPI check compares them with the spec). */
  onRoute?: (route: RouteOptions) => void;
}

/**
 * Proxies whose X-Forwarded-For we believe: only private, loopback and link-local peers (Fly's
 * proxy reaches the machine over a private network). Trusting every peer (`true`) would let any
 * client pick its own address with X-Forwarded-For, and so a fresh rate-limit bucket per request.
 */
export const TRUSTED_PROXIES = ['loopback', 'linklocal', 'uniquelocal'];

/** Builds the HTTP app. Only wiring lives here; `server.ts` is what listens. */
export async function buildApp(services: Services, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger === false ? undefined : (opts.logger ?? services.log),
    logger: opts.logger === false ? false : undefined,
    bodyLimit: 1024 * 1024,
    // Above the schemas' own limits (tenantKey: 128), so they, not the router's 414, answer.
    routerOptions: { maxParamLength: 256 },
    trustProxy: TRUSTED_PROXIES,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  if (opts.onRoute) app.addHook('onRoute', opts.onRoute);
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
  return app;
}
