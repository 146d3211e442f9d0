import type { FastifyPluginAsync } from 'fastify';
import { sql } from 'kysely';
import { Health, NotReady, Ready } from '../schemas/health.js';
import { errorResponses } from '../schemas/common.js';
import type { Services } from '../services.js';
import { bearerCheck } from '../plugins/bearer-auth.js';

async function databaseAnswers(services: Services): Promise<boolean> {
  try {
    await Promise.race([
      sql`select 1`.execute(services.db),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2_000)),
    ]);
    return true;
  } catch {
    return false;
  }
}

/** `signed`: pushes must carry Lark's signature (LARK_ENCRYPT_KEY set); `not_configured`: no store app. */
export function pushesOf(services: Pick<Services, 'config'>): 'signed' | 'unsigned' | 'not_configured' {
  const store = services.config.storeApp;
  if (!store) return 'not_configured';
  return store.encryptKey ? 'signed' : 'unsigned';
}

export const healthRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    app.get('/healthz', { schema: { summary: 'Liveness', tags: ['ops'], response: { 200: Health } } }, async () => ({
      status: 'ok' as const,
    }));

    app.get(
      '/readyz',
      {
        schema: {
          summary: 'Readiness: database reachable and, for a store app, an app_ticket known',
          tags: ['ops'],
          response: { 200: Ready, 503: NotReady },
        },
      },
      async (_request, reply) => {
        const store = services.config.storeApp;
        const storeApp = store ? ('configured' as const) : ('not_configured' as const);
        // Without an encrypt key a push is believed on its body's static verification token alone:
        // shown here (and warned about at start) so an operator notices.
        const pushes = pushesOf(services);
        if (!(await databaseAnswers(services))) return reply.code(503).send({ status: 'database_unreachable', storeApp, pushes });
        if (store && !(await services.tickets.has(store.appId))) {
          return reply.code(503).send({ status: 'waiting_for_app_ticket', storeApp, pushes });
        }
        return { status: 'ready' as const, storeApp, pushes };
      },
    );

    // Open unless METRICS_TOKEN is set: then Prometheus sends it as a bearer token.
    const metricsToken = services.config.metricsToken;
    app.get(
      '/metrics',
      {
        ...(metricsToken ? { onRequest: bearerCheck(metricsToken, 'METRICS_TOKEN') } : {}),
        schema: {
          summary: 'Prometheus metrics',
          tags: ['ops'],
          produces: ['text/plain'],
          response: {
            200: { type: 'string', description: 'Prometheus text exposition format 0.0.4' },
            ...errorResponses(401),
          },
        },
      },
      async (_request, reply) => {
        const text = await services.metrics.registry.metrics();
        return reply.type(services.metrics.registry.contentType).send(text);
      },
    );
  };
