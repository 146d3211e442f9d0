import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError } from '../errors.js';
import { TenantNotActiveError, TenantNotFoundError } from '../tenants/tenant-errors.js';

type ErrorLike = Partial<FastifyError>;
type ValidationIssue = NonNullable<FastifyError['validation']>[number];

/**
 * Ajv's own text omits the field for `required` and `additionalProperties` ("body must NOT have
 * additional properties"), so the client could not tell what to fix. Name it, as `body.appId`.
 * Values are never echoed: a rejected field may be a secret.
 */
export function describeValidation(context: string | undefined, issues: ValidationIssue[]): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const issue of issues) {
    const params = issue.params as Record<string, unknown>;
    const segments = issue.instancePath.split('/').filter(Boolean);
    let text = issue.message ?? 'is invalid';
    if (issue.keyword === 'required' && typeof params.missingProperty === 'string') {
      segments.push(params.missingProperty);
      text = 'is required';
    } else if (issue.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
      segments.push(params.additionalProperty);
      text = 'is not a known property';
    } else if (issue.keyword === 'enum' && Array.isArray(params.allowedValues)) {
      text = `must be one of: ${params.allowedValues.join(', ')}`;
    }
    const field = [context ?? 'request', ...segments].join('.');
    // One message per field: a union reports each failed branch, which only adds noise.
    if (seen.has(field)) continue;
    seen.add(field);
    parts.push(`${field}: ${text}`);
  }
  return parts.join('; ') || 'invalid request';
}

/** Domain errors (a stable code, no HTTP status of their own) and the status each is answered with. */
const DOMAIN_ERROR_STATUS: ReadonlyArray<readonly [abstract new (...args: never[]) => Error & { code: string }, number]> = [
  [TenantNotFoundError, 404],
  [TenantNotActiveError, 409],
];

/**
 * Every error leaves as `{ error: { code, message } }` with a stable code. Unexpected errors are
 * logged (message only) and answered as a bare 500, so internals and secrets never reach a client.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: ErrorLike, request, reply) => {
    if (err instanceof AppError) {
      return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message } });
    }
    for (const [type, status] of DOMAIN_ERROR_STATUS) {
      if (err instanceof type) return reply.code(status).send({ error: { code: err.code, message: err.message } });
    }
    if (err.validation) {
      return reply.code(400).send({ error: { code: 'invalid_request', message: describeValidation(err.validationContext, err.validation) } });
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
