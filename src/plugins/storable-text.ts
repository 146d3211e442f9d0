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

/** The request parts a guard looks into, by the name its message gives them. */
const PARTS = { params: 'params', query: 'querystring', body: 'body' } as const;

/**
 * A preValidation hook: Postgres text and jsonb cannot hold U+0000, and jsonb refuses unpaired
 * surrogates (text would silently turn them into U+FFFD). Such input would fail deep in a query
 * with a 500; refuse it up front with a 400 that names the field. The value is never echoed.
 */
function unstorableGuard(parts: ReadonlyArray<keyof typeof PARTS>): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    for (const part of parts) {
      const where = findUnstorableText(request[part], PARTS[part]);
      if (where) throw new AppError(400, 'invalid_request', `${where}: must not contain U+0000 or unpaired UTF-16 surrogates`);
    }
  };
}

/** Every part of the request: the REST API stores what it is sent. */
export const rejectUnstorableText = unstorableGuard(['params', 'query', 'body']);

/** Path parameters and query string only, for a route whose body is not stored as text (Lark's pushes are sealed as bytes). */
export const rejectUnstorableUrl = unstorableGuard(['params', 'query']);
