import type { Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../../errors.js';
import { errorResponses } from '../../../schemas/common.js';
import { RecordPage, RecordsParams, RecordsQuery, STREAM_NAMES } from '../../../schemas/records.js';
import { STREAM_CATALOG } from '../../../connectors/index.js';
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
        if (!(await services.tenants.get(tenantKey))) throw new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
        const { limit = 100, cursor, updatedSince } = request.query;
        const since = updatedSince === undefined ? undefined : new Date(updatedSince);
        // RFC 3339 allows what Date cannot hold (a leap second, :60).
        if (since && Number.isNaN(since.getTime())) {
          throw new AppError(400, 'invalid_request', 'querystring.updatedSince: is not a representable instant');
        }
        // The page comes as JSON text (written by Postgres): Fastify sends a JSON-typed string as it
        // is, without its serializer; the type provider only knows the page as an object, hence the cast.
        const page = await services.records.listJson(tenantKey, stream, { limit, cursor, updatedSince: since });
        return reply.type('application/json; charset=utf-8').send(page as unknown as Static<typeof RecordPage>);
      },
    );
  };
