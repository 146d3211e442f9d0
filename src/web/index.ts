import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import session from '@fastify/session';
import view from '@fastify/view';
import { Eta } from 'eta';
import type { FastifyPluginAsync } from 'fastify';
import type { Services } from '../services.js';
import { postgresSessionStore } from './session-store.js';
import { signInRoutes } from './sign-in.js';
import { adminRoutes } from './admin/routes.js';
import { securityHeaders } from './security-headers.js';
import { SESSION_COOKIE, SESSION_TTL_MS } from './web-user.js';

const VIEWS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'views');

/**
 * What browsers use: Lark sign-in (/auth/lark/...) and the tenant admin's page (/admin). Its own
 * encapsulated plugin, so cookies, sessions, form bodies and CSRF checks exist here and nowhere
 * near the REST API or the event endpoint.
 */
export const webRoutes =
  (services: Services): FastifyPluginAsync =>
  async (web) => {
    await web.register(cookie);
    await web.register(session, {
      // Derived from ENCRYPTION_KEY (and the retired keys, so a rotation does not sign everyone out at once).
      secret: services.sealer.derivedSecrets('web-session'),
      cookieName: SESSION_COOKIE,
      // HttpOnly, Secure when the request came over https (behind a proxy: TRUST_PROXY), SameSite=Lax:
      // Lark's in-app browser and the sign-in redirect are top-level navigations, which Lax allows.
      cookie: { httpOnly: true, secure: 'auto', sameSite: 'lax', path: '/', maxAge: SESSION_TTL_MS },
      store: postgresSessionStore(services.db, SESSION_TTL_MS),
      saveUninitialized: false,
      // A session is written when it changes (sign-in, the first CSRF token), not on every request:
      // the page's progress line polls each second. It ends 12 h after the sign-in (signedInAt).
      rolling: false,
    });
    await web.register(formbody, { bodyLimit: 64 * 1024 });
    await web.register(csrf, { sessionPlugin: '@fastify/session' });
    await web.register(view, { engine: { eta: new Eta({ views: VIEWS, cache: true }) }, root: VIEWS });
    securityHeaders(web);
    await web.register(signInRoutes(services));
    await web.register(adminRoutes(services));
  };
