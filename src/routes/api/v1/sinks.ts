import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { errorResponses } from '../../../schemas/common.js';
import { Sink, SinkBody, SinkDocumentList, SinkDocumentsQuery, SinkParams } from '../../../schemas/sinks.js';
import type { SinksService } from '../../../sinks/sinks.service.js';

export const sinkRoutes =
  (sinks: SinksService): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.put(
      '/tenants/:tenantKey/sinks/:name',
      {
        schema: {
          summary:
            'Creates or replaces a knowledge-base sink (RAGFlow or Dify) a docs connector can feed ("sinks": ["<name>"] in its config). ' +
            'The API key is sealed at rest and never returned; a new url, type or dataset starts a fresh mapping (documents in the old one stay)',
          tags: ['sinks'],
          params: SinkParams,
          body: SinkBody,
          response: { 200: { ...Sink, description: 'Replaced' }, 201: { ...Sink, description: 'Created' }, ...errorResponses(400, 401, 404, 409, 413, 415, 429, 500, 503) },
        },
      },
      async (request, reply) => {
        const { sink, created } = await sinks.put(request.params.tenantKey, request.params.name, request.body);
        return reply.code(created ? 201 : 200).send(sink);
      },
    );

    app.get(
      '/tenants/:tenantKey/sinks/:name',
      {
        schema: {
          summary: 'A sink: destination, delivery state (backoff, last error) and document counts; never the API key',
          tags: ['sinks'],
          params: SinkParams,
          response: { 200: Sink, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => sinks.getOrThrow(request.params.tenantKey, request.params.name),
    );

    app.delete(
      '/tenants/:tenantKey/sinks/:name',
      {
        schema: {
          summary:
            'Forgets a sink (its key and mapping). The documents it delivered stay in RAGFlow / Dify; PUT it again and the mapping is rebuilt from their lark_token metadata',
          tags: ['sinks'],
          params: SinkParams,
          response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request, reply) => {
        await sinks.delete(request.params.tenantKey, request.params.name);
        return reply.code(204).send();
      },
    );

    app.get(
      '/tenants/:tenantKey/sinks/:name/documents',
      {
        schema: {
          summary: "Each Lark document's state in the sink: sink document id, pushed hash, parse / indexing status, last error; by Lark token, keyset-paginated",
          tags: ['sinks'],
          params: SinkParams,
          querystring: SinkDocumentsQuery,
          response: { 200: SinkDocumentList, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => sinks.documents(request.params.tenantKey, request.params.name, { ...request.query, limit: request.query.limit ?? 100 }),
    );

    app.post(
      '/tenants/:tenantKey/sinks/:name/reconcile',
      {
        schema: {
          summary:
            'Lists the whole dataset and rebuilds the mapping from it (after a database restore, or edits in the sink), deletes duplicate copies, and checks every document again: failed ones are retried',
          tags: ['sinks'],
          params: SinkParams,
          response: { 202: { ...Sink, description: 'Queued' }, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request, reply) => reply.code(202).send(await sinks.reconcile(request.params.tenantKey, request.params.name)),
    );
  };
