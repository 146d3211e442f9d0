import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../../errors.js';
import { errorResponses } from '../../../schemas/common.js';
import { TenantDetail, TenantList, TenantListQuery, TenantParams } from '../../../schemas/tenants.js';
import { toTenantDetail, toTenantSummary } from '../../../tenants/tenant-views.js';
import type { Services } from '../../../services.js';

export const tenantRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/tenants',
      {
        schema: {
          summary: 'Lists tenants (keyset-paginated by tenant key)',
          tags: ['tenants'],
          querystring: TenantListQuery,
          response: { 200: TenantList, ...errorResponses(400, 401, 429, 500, 503) },
        },
      },
      async (request) => {
        const limit = request.query.limit ?? 100;
        const rows = await services.tenants.list({ status: request.query.status, limit: limit + 1, after: request.query.cursor });
        const page = rows.slice(0, limit);
        return {
          tenants: page.map(toTenantSummary),
          nextCursor: rows.length > limit ? (page.at(-1)?.tenant_key ?? null) : null,
        };
      },
    );

    app.get(
      '/tenants/:tenantKey',
      {
        schema: {
          summary: 'One tenant: status, install facts, lifecycle and token health (never token values)',
          tags: ['tenants'],
          params: TenantParams,
          response: { 200: TenantDetail, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        const row = await services.tenants.get(request.params.tenantKey);
        if (!row) throw new AppError(404, 'tenant_not_found', `tenant ${request.params.tenantKey} is not known`);
        const [kind, health, audit] = await Promise.all([
          services.apps.kindOf(row.app_id),
          services.tokens.health('tenant', row.app_id, row.tenant_key),
          services.tenants.audit(row.tenant_key, 20),
        ]);
        return toTenantDetail(row, kind ?? 'store', health, audit);
      },
    );
  };
