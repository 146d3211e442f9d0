import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import { installErrorHandling } from './plugins/error-handler.js';
import { healthRoutes } from './routes/health.js';
import { larkEventsRoute } from './routes/lark/events.js';
import { apiV1 } from './routes/api/v1/index.js';
import type { Services } from './services.js';

export interface AppOptions {
  logger?: Logger | false;
}

/** Builds the HTTP app. Only wiring lives here; `server.ts` is what listens. */
export async function buildApp(services: Services, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger === false ? undefined : (opts.logger ?? services.log),
    logger: opts.logger === false ? false : undefined,
    bodyLimit: 1024 * 1024,
    trustProxy: true,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  installErrorHandling(app);
  await app.register(swagger, {
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
