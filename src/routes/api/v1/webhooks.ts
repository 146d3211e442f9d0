import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { errorResponses } from '../../../schemas/common.js';
import {
  CreateWebhook,
  Delivery,
  DeliveryList,
  DeliveryListQuery,
  DeliveryParams,
  RotateSecret,
  UpdateWebhook,
  Webhook,
  WebhookList,
  WebhookListQuery,
  WebhookParams,
  WebhookWithSecret,
} from '../../../schemas/webhooks.js';
import type { WebhooksService } from '../../../webhooks/webhooks.service.js';

/** /api/v1/webhooks: signed webhooks out (Standard Webhooks), operator scope (the API token). */
export const webhookRoutes =
  (webhooks: WebhooksService): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/webhooks',
      {
        schema: {
          summary: 'Creates a webhook; the answer holds its signing secret, shown this once',
          tags: ['webhooks'],
          body: CreateWebhook,
          response: { 201: WebhookWithSecret, ...errorResponses(400, 401, 413, 415, 429, 500, 503) },
        },
      },
      async (request, reply) => {
        const { webhook, secret } = await webhooks.create(request.body);
        return reply.code(201).send({ ...webhook, secret });
      },
    );

    app.get(
      '/webhooks',
      {
        schema: {
          summary: 'Webhooks, by id (never their secrets)',
          tags: ['webhooks'],
          querystring: WebhookListQuery,
          response: { 200: WebhookList, ...errorResponses(400, 401, 429, 500, 503) },
        },
      },
      async (request) => {
        const limit = request.query.limit ?? 100;
        const list = await webhooks.list({ limit, after: request.query.after });
        return { webhooks: list, nextCursor: list.length === limit ? list.at(-1)!.id : null };
      },
    );

    app.get(
      '/webhooks/:id',
      {
        schema: {
          summary: 'A webhook: its status, and why it is disabled when it is',
          tags: ['webhooks'],
          params: WebhookParams,
          response: { 200: Webhook, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => webhooks.get(request.params.id),
    );

    app.patch(
      '/webhooks/:id',
      {
        schema: {
          summary: 'Changes a webhook (url, eventTypes, tenantKeys, description), or enables or disables it',
          tags: ['webhooks'],
          params: WebhookParams,
          body: UpdateWebhook,
          response: { 200: Webhook, ...errorResponses(400, 401, 404, 413, 415, 429, 500, 503) },
        },
      },
      async (request) => webhooks.update(request.params.id, request.body),
    );

    app.delete(
      '/webhooks/:id',
      {
        schema: {
          summary: 'Deletes a webhook with its deliveries',
          tags: ['webhooks'],
          params: WebhookParams,
          response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request, reply) => {
        await webhooks.remove(request.params.id);
        return reply.code(204).send();
      },
    );

    app.post(
      '/webhooks/:id/rotate-secret',
      {
        schema: {
          summary: 'A new signing secret (shown this once); the previous one keeps signing beside it for overlapSeconds',
          tags: ['webhooks'],
          params: WebhookParams,
          body: RotateSecret,
          response: { 200: WebhookWithSecret, ...errorResponses(400, 401, 404, 413, 415, 429, 500, 503) },
        },
      },
      async (request) => {
        const { webhook, secret } = await webhooks.rotateSecret(request.params.id, request.body.overlapSeconds ?? 86_400);
        return { ...webhook, secret };
      },
    );

    app.get(
      '/webhooks/:id/deliveries',
      {
        schema: {
          summary: "A webhook's deliveries, newest first, each with its attempts (status code, latency, error)",
          tags: ['webhooks'],
          params: WebhookParams,
          querystring: DeliveryListQuery,
          response: { 200: DeliveryList, ...errorResponses(400, 401, 404, 429, 500, 503) },
        },
      },
      async (request) => {
        const q = request.query;
        return webhooks.deliveries(request.params.id, { limit: q.limit ?? 50, before: q.cursor, status: q.status, tenantKey: q.tenantKey });
      },
    );

    app.post(
      '/webhooks/:id/deliveries/:deliveryId/resend',
      {
        schema: {
          summary: 'Sends a delivery again, with the same webhook-id and body, in its (webhook, tenant) order; retried like a new one',
          tags: ['webhooks'],
          params: DeliveryParams,
          response: { 202: Delivery, ...errorResponses(400, 401, 404, 409, 429, 500, 503) },
        },
      },
      async (request, reply) => reply.code(202).send(await webhooks.resend(request.params.id, request.params.deliveryId)),
    );
  };
