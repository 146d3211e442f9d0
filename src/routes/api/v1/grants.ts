import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../../errors.js';
import { STATE_TTL_SECONDS } from '../../../oauth/oauth-states.js';
import { errorResponses } from '../../../schemas/common.js';
import { GrantList, GrantParams, LoginUrl, LoginUrlQuery } from '../../../schemas/grants.js';
import { TenantParams } from '../../../schemas/tenants.js';
import type { Services } from '../../../services.js';
import { isLocalPath, SignInUnavailable, signInUrl } from '../../../web/sign-in.js';

const isHttpUrl = (v: string) => {
  try {
    const u = new URL(v);
    return (u.protocol === 'https:' || u.protocol === 'http:') && !u.username && !u.password;
  } catch {
    return false;
  }
};

export const grantRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    const tenantOf = async (tenantKey: string) => {
      const tenant = await services.tenants.get(tenantKey);
      if (!tenant) throw new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
      return tenant;
    };

    app.get(
      '/tenants/:tenantKey/grants',
      {
        schema: {
          summary: "Users who authorized larksync in this tenant: scopes, status, expiries (never token values)",
          tags: ['grants'],
          params: TenantParams,
          response: { 200: GrantList, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        await tenantOf(request.params.tenantKey);
        return { grants: await services.grants.list(request.params.tenantKey) };
      },
    );

    app.delete(
      '/tenants/:tenantKey/grants/:openId',
      {
        schema: {
          summary: "Forgets a user's authorization (larksync stops reading as that user); the user can sign in again",
          tags: ['grants'],
          params: GrantParams,
          response: { 204: { type: 'null', description: 'Forgotten' }, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request, reply) => {
        await tenantOf(request.params.tenantKey);
        if (!(await services.grants.remove(request.params.tenantKey, request.params.openId))) {
          throw new AppError(404, 'grant_not_found', `user ${request.params.openId} has not authorized larksync in tenant ${request.params.tenantKey}`);
        }
        return reply.code(204).send();
      },
    );

    app.get(
      '/auth/lark/login-url',
      {
        schema: {
          summary: "A Lark sign-in link for a tenant's user, for your own front end: open it in the user's browser",
          tags: ['grants'],
          querystring: LoginUrlQuery,
          response: { 200: LoginUrl, ...errorResponses(400, 401, 404, 409, 429, 500, 503) },
        },
      },
      async (request) => {
        const tenant = await tenantOf(request.query.tenantKey);
        if (tenant.status !== 'active') throw new AppError(409, 'tenant_not_active', `tenant ${tenant.tenant_key} is ${tenant.status}`);
        const returnTo = request.query.returnTo ?? '/auth/lark/done';
        if (!isLocalPath(returnTo) && !isHttpUrl(returnTo)) {
          throw new AppError(400, 'invalid_request', 'querystring.returnTo: give a path of larksync (/…) or an http(s) URL');
        }
        try {
          const url = await signInUrl(services, { appId: tenant.app_id, purpose: 'grant', returnTo, tenantKey: tenant.tenant_key });
          return { url, expiresAt: new Date(Date.now() + STATE_TTL_SECONDS * 1000).toISOString() };
        } catch (err) {
          if (err instanceof SignInUnavailable) throw new AppError(503, 'sign_in_unavailable', err.message);
          throw err;
        }
      },
    );
  };
