import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify';
import { tokenMatcher } from '../crypto/token-matcher.js';
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
  const check = bearerCheck(apiToken, 'API_TOKEN');
  scope.addHook('onRoute', (route) => {
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...existing, check as onRequestHookHandler];
  });
}

/**
 * An onRequest check of `Authorization: Bearer <token>` against `token` (the variable named
 * `variable`); without a token configured the routes answer 503.
 */
export function bearerCheck(token: string | undefined, variable: string): (request: FastifyRequest) => Promise<void> {
  const matches = token === undefined ? undefined : tokenMatcher(token);
  return async (request: FastifyRequest) => {
    if (!matches) {
      throw new AppError(503, 'api_disabled', `the REST API is disabled: set ${variable}`);
    }
    // The scheme name is case-insensitive (RFC 9110 section 11.1).
    const match = /^bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    const given = match?.[1] ?? '';
    if (!given || !matches(given)) {
      throw new AppError(401, 'unauthorized', `send Authorization: Bearer <${variable}>`);
    }
  };
}
