import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../../errors.js';
import { errorResponses } from '../../../schemas/common.js';
import { TenantParams } from '../../../schemas/tenants.js';
import { Write, WriteList, WriteListQuery, WriteParams, WriteQuery, WriteRequest, WriteSummary } from '../../../schemas/writes.js';
import type { Services } from '../../../services.js';
import { FINISHED } from '../../../writes/writes.service.js';

const notFound = (id: string) => new AppError(404, 'write_not_found', `write ${id} is not known`);

export const writeRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/tenants/:tenantKey/writes',
      {
        // 10,000 records with their fields: more than the default 1 MiB.
        bodyLimit: 16 * 1024 * 1024,
        schema: {
          summary:
            'Writes records into a Base table: 202 once the write is stored; it is applied in the order writes were accepted for that Base. ' +
            'Idempotency-Key: the same key and body return the same write (200), the same key with another body is a 409. ?wait=N holds the answer until the write finishes or N seconds pass',
          tags: ['writes'],
          params: TenantParams,
          querystring: WriteQuery,
          headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }),
          body: WriteRequest,
          response: {
            200: { ...WriteSummary, description: 'The write this Idempotency-Key made before, or a write that finished within ?wait' },
            202: { ...WriteSummary, description: 'Stored and queued (or still running after ?wait)' },
            ...errorResponses(400, 401, 404, 409, 413, 415, 429, 500, 503),
          },
        },
      },
      async (request, reply) => {
        const { write, created } = await services.writes.accept(request.params.tenantKey, request.body, request.headers['idempotency-key']);
        const wait = request.query.wait ?? 0;
        const now = wait > 0 ? ((await services.writes.waitFor(write.id, wait)) ?? write) : write;
        return reply.code(!created || FINISHED.includes(now.status) ? 200 : 202).send(now);
      },
    );

    app.get(
      '/writes/:id',
      {
        schema: {
          summary: 'A write: status, counts, and per record the resulting recordId or an error { code, message, field? }',
          tags: ['writes'],
          params: WriteParams,
          response: { 200: Write, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        const w = await services.writes.get(request.params.id);
        if (!w) throw notFound(request.params.id);
        return { ...w, records: w.records ?? [] };
      },
    );

    app.get(
      '/tenants/:tenantKey/writes',
      {
        schema: {
          summary: "A tenant's most recent writes, newest first",
          tags: ['writes'],
          params: TenantParams,
          querystring: WriteListQuery,
          response: { 200: WriteList, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        if (!(await services.tenants.get(request.params.tenantKey))) throw new AppError(404, 'tenant_not_found', `tenant ${request.params.tenantKey} is not known`);
        return { writes: await services.writes.list(request.params.tenantKey, { status: request.query.status, limit: request.query.limit ?? 20 }) };
      },
    );

    app.post(
      '/writes/:id/cancel',
      {
        schema: {
          summary: 'Stops what has not been sent; records already on their way to Lark finish. A finished write comes back unchanged',
          tags: ['writes'],
          params: WriteParams,
          response: { 200: WriteSummary, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        const w = await services.writes.cancel(request.params.id);
        if (!w) throw notFound(request.params.id);
        return w;
      },
    );
  };
