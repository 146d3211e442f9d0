import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../../errors.js';
import { errorResponses } from '../../../schemas/common.js';
import { TenantParams } from '../../../schemas/tenants.js';
import { SyncListQuery, SyncParams, SyncRun, SyncRunList, TriggerSyncBody } from '../../../schemas/syncs.js';
import { toRunView } from '../../../sync/sync.service.js';
import type { Services } from '../../../services.js';

const syncNotFound = (id: string) => new AppError(404, 'sync_not_found', `sync run ${id} is not known`);

export const syncRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/tenants/:tenantKey/syncs',
      {
        schema: {
          summary:
            'Starts a sync run: 202 with a new run, or 200 with the run of that module already queued or running. ' +
            'A paused or uninstalled tenant gets 409 tenant_not_active and its queued and running runs are cancelled',
          tags: ['syncs'],
          params: TenantParams,
          body: TriggerSyncBody,
          response: {
            200: { ...SyncRun, description: 'A run of this module was already queued or running: that run' },
            202: { ...SyncRun, description: 'A new run, queued' },
            ...errorResponses(400, 401, 404, 409, 413, 415, 429, 500, 503),
          },
        },
      },
      async (request, reply) => {
        const { module, mode = 'incremental' } = request.body;
        const { run, created } = await services.sync.trigger(request.params.tenantKey, module, mode, 'api');
        return reply.code(created ? 202 : 200).send(toRunView(run));
      },
    );

    app.get(
      '/tenants/:tenantKey/syncs',
      {
        schema: {
          summary: "A tenant's most recent sync runs, newest first",
          tags: ['syncs'],
          params: TenantParams,
          querystring: SyncListQuery,
          response: { 200: SyncRunList, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        const { tenantKey } = request.params;
        // An empty list would not tell a typo in the key from a tenant that never synced.
        if (!(await services.tenants.get(tenantKey))) throw new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
        const rows = await services.sync.list(tenantKey, { limit: request.query.limit ?? 20, module: request.query.module });
        return { runs: rows.map(toRunView) };
      },
    );

    app.get(
      '/syncs/:id',
      {
        schema: {
          summary: 'One sync run: status, counts per stream, upstream calls, error',
          tags: ['syncs'],
          params: SyncParams,
          response: { 200: SyncRun, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        const run = await services.sync.get(request.params.id);
        if (!run) throw syncNotFound(request.params.id);
        return toRunView(run);
      },
    );

    app.post(
      '/syncs/:id/cancel',
      {
        schema: {
          summary:
            'Cancels a queued or running run (a running one stops at its next page). Idempotent: a run that already ' +
            'finished is returned unchanged with 200, so check its status',
          tags: ['syncs'],
          params: SyncParams,
          response: { 200: SyncRun, ...errorResponses(400, 401, 404, 413, 415, 429, 500, 503) },
        },
      },
      async (request) => {
        const run = await services.sync.cancel(request.params.id);
        if (!run) throw syncNotFound(request.params.id);
        return toRunView(run);
      },
    );
  };
