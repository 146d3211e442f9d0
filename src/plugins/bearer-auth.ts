import type { FastifyInstance } from 'fastify';
import { safeEqual } from '../lark/event-crypto.js';
import { AppError } from '../errors.js';

/** Requires `Authorization: Bearer <API_TOKEN>` on every route of the scope it is added to. */
export function requireBearer(scope: FastifyInstance, apiToken: string | undefined): void {
  scope.addHook('onRequest', async (request) => {
    if (!apiToken) {
      throw new AppError(503, 'api_disabled', 'the REST API is disabled: set API_TOKEN');
    }
    const header = request.headers.authorization;
    const given = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!given || !safeEqual(given, apiToken)) {
      throw new AppError(401, 'unauthorized', 'send Authorization: Bearer <API_TOKEN>');
    }
  });
}
