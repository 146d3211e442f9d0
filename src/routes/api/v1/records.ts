import type { Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../../errors.js';
import { errorResponses } from '../../../schemas/common.js';
import { RecordPage, RecordsParams, RecordsQuery, STREAM_NAMES } from '../../../schemas/records.js';
import { STREAM_CATALOG } from '../../../connectors/index.js';
import { pageIsEmpty } from '../../../sync/records.service.js';
import type { Services } from '../../../services.js';

export const recordRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/tenants/:tenantKey/streams/:stream/records',
      {
        schema: {
          summary: "A tenant's synced rows of one stream, keyset-paginated in change order; deleted rows come with deletedAt",
          tags: ['records'],
          params: RecordsParams,
          querystring: RecordsQuery,
          response: { 200: RecordPage, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
        // The stream enum stays in the spec, yet an unknown stream is a missing collection (404), not a bad request.
        attachValidation: true,
      },
      async (request, reply) => {
        if (request.validationError) {
          const stream = (request.params as { stream?: unknown }).stream;
          if (typeof stream !== 'string' || !STREAM_CATALOG.has(stream)) {
            throw new AppError(404, 'stream_not_found', `no stream ${String(stream)}; streams are ${STREAM_NAMES.join(', ')}`);
          }
          throw request.validationError;
        }
        const { tenantKey, stream } = request.params;
        const unknownTenant = async () => !(await services.tenants.exists(tenantKey));
        const notFound = () => new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
        const { limit = 100, cursor, updatedSince } = request.query;
        const since = updatedSince === undefined ? undefined : new Date(updatedSince);
        // RFC 3339 allows what Date cannot hold (a leap second, :60).
        if (since && Number.isNaN(since.getTime())) {
          if (await unknownTenant()) throw notFound();
          throw new AppError(400, 'invalid_request', 'querystring.updatedSince: is not a representable instant');
        }
        // Rows exist only for a known tenant: the tenant is looked up only when the page is empty
        // (or the read failed), which spares a query on every page of a busy feed. An unknown
        // tenant is a 404 before any other error, as before.
        let page: string;
        try {
          // The page comes as JSON text (written by Postgres, records.service.ts).
          page = await services.records.listJson(tenantKey, stream, { limit, cursor, updatedSince: since });
        } catch (err) {
          if (await unknownTenant()) throw notFound();
          throw err;
        }
        if (pageIsEmpty(page) && (await unknownTenant())) throw notFound();
        // Fastify sends a JSON-typed string as it is, without its serializer; the type provider
        // only knows the page as an object, hence the cast.
        return reply.type('application/json; charset=utf-8').send(page as unknown as Static<typeof RecordPage>);
      },
    );
  };
