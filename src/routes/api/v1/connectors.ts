import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../../errors.js';
import { errorResponses } from '../../../schemas/common.js';
import { Connector, ConnectorBody, ConnectorParams } from '../../../schemas/connectors.js';
import type { Services } from '../../../services.js';
import type { TenantRow } from '../../../tenants/tenants.table.js';

export const connectorRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    async function tenantOrThrow(tenantKey: string): Promise<TenantRow> {
      const tenant = await services.tenants.get(tenantKey);
      if (!tenant) throw new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
      return tenant;
    }
    // Warnings depend on the app kind (attendance needs a custom app); like the engine, an unknown app counts as the store app.
    const kindOf = async (tenant: TenantRow) => (await services.apps.kindOf(tenant.app_id)) ?? 'store';

    app.get(
      '/tenants/:tenantKey/connectors/:module',
      {
        schema: {
          summary: "A tenant's connector for one module: enabled, schedule, settings and warnings",
          tags: ['connectors'],
          params: ConnectorParams,
          response: { 200: Connector, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        const { tenantKey, module } = request.params;
        const tenant = await tenantOrThrow(tenantKey);
        const view = await services.connectors.get(tenantKey, module, await kindOf(tenant));
        if (!view) {
          throw new AppError(
            404,
            'connector_not_found',
            `tenant ${tenantKey} has no ${module} connector; configure it with PUT /api/v1/tenants/${tenantKey}/connectors/${module}`,
          );
        }
        return view;
      },
    );

    app.put(
      '/tenants/:tenantKey/connectors/:module',
      {
        schema: {
          summary: 'Configures (creates or replaces) a connector; paused tenants may be configured, uninstalled ones not (409 tenant_not_active)',
          tags: ['connectors'],
          params: ConnectorParams,
          body: ConnectorBody,
          response: { 200: Connector, ...errorResponses(400, 401, 404, 409, 413, 415, 429, 500, 503) },
        },
      },
      async (request) => {
        const { tenantKey, module } = request.params;
        const tenant = await tenantOrThrow(tenantKey);
        // A paused tenant comes back with start_by_tenant and should find its connectors ready;
        // an uninstalled one has no token, so a connector for it could never run.
        if (tenant.status === 'uninstalled') {
          throw new AppError(409, 'tenant_not_active', `tenant ${tenantKey} is uninstalled; connectors can be configured once it installs the app again`);
        }
        return services.connectors.put(tenantKey, module, request.body, await kindOf(tenant));
      },
    );
  };
