import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { MODULE_NAMES } from '../../connectors/index.js';
import { AppError } from '../../errors.js';
import type { Services } from '../../services.js';
import { toRunView } from '../../sync/sync.service.js';
import type { SyncModuleName } from '../../sync/sync.tables.js';
import type { TenantRow } from '../../tenants/tenants.table.js';
import { isAppId, messagePage } from '../sign-in.js';
import { SESSION_COOKIE, SESSION_TTL_MS, type WebUser } from '../web-user.js';
import { field, MODULE_FORMS, readForm, withLine, type FormValues } from './forms.js';
import { adminPage, runLine, whenText, type PageOptions } from './view-model.js';

const PUBLIC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'public');

/** Who asks: nobody signed in, a cookie that names no valid session, or a user of a tenant. */
type Caller = { kind: 'anonymous' } | { kind: 'invalid' } | { kind: 'user'; user: WebUser; tenant: TenantRow };

interface Signed {
  user: WebUser;
  tenant: TenantRow;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the admin routes' guard: the signed-in user and their tenant. */
    signedIn: Signed | null;
  }
}

const isModule = (v: string): v is SyncModuleName => (MODULE_NAMES as string[]).includes(v);

/** Where the sign-in starts, coming back to this page (with the custom app's id, if any). */
export function signInHref(app: string | undefined): string {
  const returnTo = app ? `/admin?app=${app}` : '/admin';
  return `/auth/lark/login?returnTo=${encodeURIComponent(returnTo)}${app ? `&app=${app}` : ''}`;
}

/**
 * The tenant admin's page (/admin): sign-in, the tenant's status, its modules with their last runs
 * and settings, who authorized larksync; admins configure modules and start syncs. The tenant is
 * always the one the signed-in user's Lark token named (request.signedIn), never one from the URL
 * or a form.
 */
export const adminRoutes =
  (services: Services): FastifyPluginAsync =>
  async (admin) => {
    const css = readFileSync(path.join(PUBLIC, 'admin.css'));
    const cssTag = `"${createHash('sha256').update(css).digest('base64url').slice(0, 22)}"`;

    admin.decorateRequest('signedIn', null);

    async function callerOf(request: FastifyRequest, reply: FastifyReply): Promise<Caller> {
      const user = request.session?.user;
      if (!user) {
        // @fastify/session answers a forged, tampered or unknown cookie with a fresh, empty
        // session (and clears the cookie): only the cookie's presence tells it from a first visit.
        return request.cookies[SESSION_COOKIE] ? { kind: 'invalid' } : { kind: 'anonymous' };
      }
      const signedInAt = Date.parse(user.signedInAt ?? '');
      const tenant = await services.tenants.get(user.tenantKey);
      // A session outlives neither its 12 hours nor its tenant: an uninstalled company, or one now
      // served by another app, shows nothing until someone signs in again.
      const valid =
        signedInAt > Date.now() - SESSION_TTL_MS && tenant !== undefined && tenant.app_id === user.appId && tenant.status !== 'uninstalled';
      if (!valid) {
        await request.session.destroy();
        reply.clearCookie(SESSION_COOKIE, { path: '/' });
        return { kind: 'invalid' };
      }
      return { kind: 'user', user, tenant };
    }

    const appParam = (request: FastifyRequest) => {
      const app = (request.query as Record<string, unknown> | undefined)?.app;
      return isAppId(app) ? app : undefined;
    };

    const signInAgain = (request: FastifyRequest, reply: FastifyReply) =>
      messagePage(
        reply,
        401,
        'Please sign in again',
        'Your session has ended, was signed out, or is not valid here. Nothing is shown until you sign in with Lark again.',
        { href: signInHref(appParam(request)), label: 'Sign in with Lark' },
      );

    /** preHandler of the forms: a valid session, else a 401 page. */
    async function requireUser(request: FastifyRequest, reply: FastifyReply) {
      const caller = await callerOf(request, reply);
      if (caller.kind !== 'user') return signInAgain(request, reply);
      request.signedIn = { user: caller.user, tenant: caller.tenant };
    }

    /** preHandler of the forms that change something: admins only (after the CSRF check). */
    async function requireAdmin(request: FastifyRequest, reply: FastifyReply) {
      if (request.signedIn?.user.role !== 'admin') {
        return messagePage(
          reply,
          403,
          'Read-only',
          "Only the app's installer or an app administrator of your company can change larksync's settings or start a sync. Ask one of them.",
          { href: '/admin', label: 'Back' },
        );
      }
    }

    admin.setErrorHandler((err: FastifyError, request, reply) => {
      if (request.url.startsWith('/admin/runs/')) {
        request.log.error({ errName: err.name, errMessage: err.message }, 'admin page error');
        return reply.code(500).send({ error: { code: 'internal_error', message: 'internal error; see the server log' } });
      }
      if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET') {
        return messagePage(reply, 403, 'This form has expired', 'The form did not carry a valid security token (it may be from an older page). Reload the page and try again.', {
          href: '/admin',
          label: 'Reload',
        });
      }
      if (err instanceof AppError) return messagePage(reply, err.statusCode, 'That did not work', err.message, { href: '/admin', label: 'Back' });
      if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
        return messagePage(reply, err.statusCode, 'That did not work', 'The request was not understood. Go back to the page and try again.', { href: '/admin', label: 'Back' });
      }
      request.log.error({ errName: err.name, errMessage: err.message }, 'admin page error');
      return messagePage(reply, 500, 'Something went wrong', 'larksync could not show this page; the server log says why. Try again in a moment.');
    });

    admin.get('/admin/assets/admin.css', { schema: { hide: true } }, async (request, reply) => {
      reply.header('content-type', 'text/css; charset=utf-8').header('cache-control', 'no-cache').header('etag', cssTag);
      if (request.headers['if-none-match'] === cssTag) return reply.code(304).send();
      return reply.send(css);
    });

    async function renderPage(request: FastifyRequest, reply: FastifyReply, signed: Signed, status: number, opts: PageOptions) {
      const page = await adminPage(services, signed.user, signed.tenant, opts);
      return reply.code(status).view('admin/page.eta', {
        ...page,
        title: page.tenant.name ?? 'Your company',
        csrf: reply.generateCsrf(),
        nonce: request.cspNonce,
        app: appParam(request) ?? null,
        when: whenText,
      });
    }

    admin.get<{ Querystring: Record<string, unknown> }>('/admin', { schema: { hide: true } }, async (request, reply) => {
      const app = appParam(request);
      const caller = await callerOf(request, reply);
      if (caller.kind === 'invalid') return signInAgain(request, reply);
      if (caller.kind === 'anonymous' || (app && app !== caller.user.appId)) {
        const noApp = !app && !services.config.storeApp;
        return reply.code(200).view('admin/sign-in.eta', {
          title: 'Sign in',
          href: signInHref(app),
          signedOut: request.query.signed_out === '1',
          otherApp: caller.kind === 'user',
          noApp,
        });
      }
      const q = request.query;
      const saved = typeof q.saved === 'string' && isModule(q.saved) ? q.saved : undefined;
      const started = typeof q.started === 'string' && isModule(q.started) ? q.started : undefined;
      const running = typeof q.running === 'string' && isModule(q.running) ? q.running : undefined;
      const notice = saved
        ? `${MODULE_FORMS[saved]!.title} settings saved.`
        : started
          ? `${MODULE_FORMS[started]!.title} sync started.`
          : running
            ? `A ${MODULE_FORMS[running]!.title} sync was already queued or running: that is the one shown.`
            : null;
      return renderPage(request, reply, caller, 200, { notice });
    });

    admin.get<{ Params: { id: string } }>('/admin/runs/:id.json', { schema: { hide: true } }, async (request, reply) => {
      const caller = await callerOf(request, reply);
      if (caller.kind !== 'user') return reply.code(401).send({ error: { code: 'unauthorized', message: 'sign in again' } });
      const run = await services.sync.get(request.params.id);
      // Another tenant's run is as unknown as a run that never existed.
      if (!run || run.tenant_key !== caller.user.tenantKey) {
        return reply.code(404).send({ error: { code: 'sync_not_found', message: `sync run ${request.params.id} is not known` } });
      }
      const view = toRunView(run);
      const line = runLine(view);
      return reply.send({ ...view, active: line.active, progress: line.progress });
    });

    admin.post<{ Params: { module: string }; Body: unknown }>(
      '/admin/connectors/:module',
      { schema: { hide: true }, preHandler: [requireUser, admin.csrfProtection, requireAdmin] },
      async (request, reply) => {
        const signed = request.signedIn!;
        const module = request.params.module;
        if (!isModule(module)) return messagePage(reply, 404, 'No such module', 'larksync syncs approval, base, attendance and contact.', { href: '/admin', label: 'Back' });
        const form = readForm(module, request.body);
        const again = (values: FormValues, error: string) => renderPage(request, reply, signed, 400, { posted: { module, values, error } });
        if (!form.ok) return again(form.values, form.message);
        const kind = (await services.apps.kindOf(signed.tenant.app_id)) ?? 'store';
        try {
          await services.connectors.put(signed.user.tenantKey, module, form.input, kind);
        } catch (err) {
          if (err instanceof AppError && err.code === 'invalid_config') return again(form.values, withLine(module, err.message, form.lines));
          throw err;
        }
        request.log.info({ tenantKey: signed.user.tenantKey, module, openId: signed.user.openId }, 'admin page: connector saved');
        return reply.redirect(`/admin?saved=${module}${appQuery(request)}#${module}`, 303);
      },
    );

    admin.post<{ Body: unknown }>(
      '/admin/syncs',
      { schema: { hide: true }, preHandler: [requireUser, admin.csrfProtection, requireAdmin] },
      async (request, reply) => {
        const signed = request.signedIn!;
        const module = field(request.body, 'module');
        if (!isModule(module)) return messagePage(reply, 400, 'No such module', 'larksync syncs approval, base, attendance and contact.', { href: '/admin', label: 'Back' });
        const mode = field(request.body, 'mode') === 'full' ? 'full' : 'incremental';
        try {
          const { created } = await services.sync.trigger(signed.user.tenantKey, module, mode, 'api');
          request.log.info({ tenantKey: signed.user.tenantKey, module, mode, openId: signed.user.openId, created }, 'admin page: sync triggered');
          return reply.redirect(`/admin?${created ? 'started' : 'running'}=${module}${appQuery(request)}#${module}`, 303);
        } catch (err) {
          if (!(err instanceof AppError) || err.statusCode !== 409) throw err;
          const problem =
            err.code === 'connector_not_configured' ? `Save the ${MODULE_FORMS[module]!.title} settings before starting a sync.` : err.message;
          return renderPage(request, reply, signed, 409, { problem });
        }
      },
    );

    admin.post('/admin/sign-out', { schema: { hide: true }, preHandler: [requireUser, admin.csrfProtection] }, async (request, reply) => {
      const app = request.signedIn!.user.appId;
      await request.session.destroy();
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      const custom = app !== services.config.storeApp?.appId;
      return reply.redirect(`/admin?signed_out=1${custom ? `&app=${app}` : ''}`, 303);
    });
  };

/** Keeps a custom app's `?app=` across the form posts' redirects (it rides in the form's action). */
function appQuery(request: FastifyRequest): string {
  const app = (request.query as Record<string, unknown> | undefined)?.app;
  return isAppId(app) ? `&app=${app}` : '';
}
