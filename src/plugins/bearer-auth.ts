import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify';
import { safeEqual } from '../lark/event-crypto.js';
import { AppError } from '../errors.js';

/**
 * Requires `Authorization: Bearer <API_TOKEN>` on every route of the scope it is added to.
 *
 * The check is a route-level onRequest hook appended through onRoute. Scope hooks (addHook)
 * run before route-level ones, so a scope hook would answer 401 before @fastify/rate-limit's
 * route hook counted the request, leaving token guessing unthrottled. Call this after
 * registering the rate limiter: onRoute hooks run in registration order.
 */
export function requireBearer(scope: FastifyInstance, apiToken: string | undefined): void {
  const check = async (request: FastifyRequest) => {
    if (!apiToken) {
      throw new AppError(503, 'api_disabled', 'the REST API is disabled: set API_TOKEN');
    }
    // The scheme name is case-insensitive (RFC 9110 section 11.1).
    const match = /^bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    const given = match?.[1] ?? '';
    if (!given || !safeEqual(given, apiToken)) {
      throw new AppError(401, 'unauthorized', 'send Authorization: Bearer <API_TOKEN>');
    }
  };
  scope.addHook('onRoute', (route) => {
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...existing, check as onRequestHookHandler];
  });
}
