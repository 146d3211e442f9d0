import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError } from '../errors.js';

type ErrorLike = Partial<FastifyError>;

/**
 * Every error leaves as `{ error: { code, message } }` with a stable code. Unexpected errors are
 * logged (message only) and answered as a bare 500, so internals and secrets never reach a client.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: ErrorLike, request, reply) => {
    if (err instanceof AppError) {
      return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message } });
    }
    if (err.validation) {
      return reply.code(400).send({ error: { code: 'invalid_request', message: err.message ?? 'invalid request' } });
    }
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(413).send({ error: { code: 'payload_too_large', message: 'request body is larger than 1 MiB' } });
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.code(415).send({ error: { code: 'unsupported_media_type', message: 'send application/json' } });
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return reply.code(400).send({ error: { code: 'malformed_json', message: 'request body is not valid JSON' } });
      default:
        break;
    }
    if (err.statusCode === 429) {
      return reply.code(429).send({ error: { code: 'rate_limited', message: err.message ?? 'rate limit exceeded' } });
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      if (err.name === 'SyntaxError') {
        return reply.code(400).send({ error: { code: 'malformed_json', message: 'request body is not valid JSON' } });
      }
      return reply.code(err.statusCode).send({ error: { code: 'bad_request', message: err.message ?? 'bad request' } });
    }
    request.log.error({ errName: err.name, errMessage: err.message }, 'unhandled error');
    return reply.code(500).send({ error: { code: 'internal_error', message: 'internal error; see the server log' } });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no route for ${request.method} ${request.url.split('?')[0]}` } }),
  );
}
