import type { FastifyPluginAsync } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { AppError } from '../../../errors.js';
import { requireBearer } from '../../../plugins/bearer-auth.js';
import { rejectUnstorableText } from '../../../plugins/storable-text.js';
import type { Services } from '../../../services.js';
import { appRoutes } from './apps.js';
import { connectorRoutes } from './connectors.js';
import { recordRoutes } from './records.js';
import { syncRoutes } from './syncs.js';
import { tenantRoutes } from './tenants.js';
import { grantRoutes } from './grants.js';
import { writeRoutes } from './writes.js';
import { webhookRoutes } from './webhooks.js';
import { sinkRoutes } from './sinks.js';

/** /api/v1: rate limit first (so it also limits token guessing), then bearer auth, then routes. */
export const apiV1 =
  (services: Services): FastifyPluginAsync =>
  async (api) => {
    await api.register(rateLimit, {
      max: services.config.apiRateLimit,
      timeWindow: '1 minute',
      // In-memory per replica; with N replicas a client gets up to N x the limit (documented).
      errorResponseBuilder: (_req, ctx) =>
        new AppError(429, 'rate_limited', `rate limit of ${ctx.max} requests per minute exceeded; retry in ${ctx.after}`),
    });
    requireBearer(api, services.config.apiToken);
    // JSON only: a text/plain body would otherwise reach validation as a string ("body must be object").
    api.removeContentTypeParser('text/plain');
    // After auth (onRequest) and parsing, before validation: text Postgres cannot store is a 400, not a 500.
    api.addHook('preValidation', rejectUnstorableText);
    await api.register(tenantRoutes(services));
    await api.register(appRoutes(services));
    await api.register(connectorRoutes(services));
    await api.register(syncRoutes(services));
    await api.register(recordRoutes(services));
    await api.register(grantRoutes(services));
    await api.register(writeRoutes(services));
    await api.register(webhookRoutes(services.webhooks));
    await api.register(sinkRoutes(services.sinks));
  };
