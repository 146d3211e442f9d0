import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';

/** U+0000, or a surrogate without its pair (a well-formed pair is one code point under the `u` flag). */
const UNSTORABLE = /\u0000|\p{Cs}/u;

/** The dotted path of the first string (key or value) Postgres cannot store, if any. */
export function findUnstorableText(value: unknown, path: string, depth = 0): string | undefined {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? path : undefined;
  // Deeper than any request schema goes; a pathological nesting is refused by validation anyway.
  if (!value || typeof value !== 'object' || depth > 64) return undefined;
  for (const [key, inner] of Object.entries(value)) {
    const at = `${path}.${key.replace(/\u0000|\p{Cs}/gu, '?')}`;
    if (UNSTORABLE.test(key)) return at;
    const found = findUnstorableText(inner, at, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/**
 * A preValidation hook: Postgres text and jsonb cannot hold U+0000, and jsonb refuses unpaired
 * surrogates (text would silently turn them into U+FFFD). Such input would fail deep in a query
 * with a 500; refuse it up front with a 400 that names the field. The value is never echoed.
 */
export async function rejectUnstorableText(request: FastifyRequest): Promise<void> {
  const where =
    findUnstorableText(request.params, 'params') ?? findUnstorableText(request.query, 'querystring') ?? findUnstorableText(request.body, 'body');
  if (where) {
    throw new AppError(400, 'invalid_request', `${where}: must not contain U+0000 or unpaired UTF-16 surrogates`);
  }
}

/**
 * The same for a route whose body is not stored as text (Lark's pushes are sealed as bytes): its
 * path parameters and query string only.
 */
export async function rejectUnstorableUrl(request: FastifyRequest): Promise<void> {
  const where = findUnstorableText(request.params, 'params') ?? findUnstorableText(request.query, 'querystring');
  if (where) {
    throw new AppError(400, 'invalid_request', `${where}: must not contain U+0000 or unpaired UTF-16 surrogates`);
  }
}
