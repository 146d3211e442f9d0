import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { errorResponses } from '../../../schemas/common.js';
import { RegisterAppBody, RegisteredApp } from '../../../schemas/apps.js';
import type { Services } from '../../../services.js';

export const appRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/apps',
      {
        schema: {
          summary: 'Registers a custom (self-built) app; its tenant then behaves like any other',
          tags: ['apps'],
          body: RegisterAppBody,
          response: { 201: RegisteredApp, ...errorResponses(400, 401, 409, 413, 415, 429, 500, 502, 503) },
        },
      },
      async (request, reply) => {
        const registered = await services.apps.registerCustomApp(request.body);
        return reply.code(201).send(registered);
      },
    );
  };
