import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** This response's CSP nonce: the only inline script a page may run carries it. */
    cspNonce: string;
  }
}

/**
 * Headers of every browser-facing answer (sign-in pages, the admin page, its JSON and assets):
 * nothing is cached unless a route says otherwise (pages show one tenant's data), scripts run only
 * with this response's nonce, styles, fetches and form posts go to larksync itself, and no one
 * frames the page (Lark's in-app browser opens the web app's home top-level).
 */
export function securityHeaders(web: FastifyInstance): void {
  web.decorateRequest('cspNonce', '');
  web.addHook('onRequest', async (request) => {
    request.cspNonce = randomBytes(16).toString('base64');
  });
  web.addHook('onSend', async (request, reply, payload) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    reply.header(
      'content-security-policy',
      [
        "default-src 'none'",
        `script-src 'nonce-${request.cspNonce}'`,
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
      ].join('; '),
    );
    reply.header('x-frame-options', 'DENY');
    reply.header('x-content-type-options', 'nosniff');
    // The callback's URL carries Lark's one-time code: it never goes anywhere in a Referer.
    reply.header('referrer-policy', 'no-referrer');
    return payload;
  });
}
