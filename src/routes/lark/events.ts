import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { PushRejectedError, parsePush, type PushKeys } from '../../events/parse-push.js';
import type { Services } from '../../services.js';
import { errorResponses } from '../../schemas/common.js';
import { lazyChildLoggerFactory } from '../../plugins/lazy-request-logger.js';
import { rejectUnstorableUrl } from '../../plugins/storable-text.js';

/** Lark's pushes are small; anything larger than this is refused with 413 (pinned). */
export const EVENT_BODY_LIMIT = 1024 * 1024;

const header = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

const SUCCESS = JSON.stringify({ msg: 'success' });
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * POST /lark/events: verify, store durably (sealed, de-duplicated), acknowledge. Processing runs
 * later from the stored row, so the answer stays well inside Lark's 3 s (and 1 s for challenges).
 */
export const larkEventsRoute =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    // The signature covers the raw bytes, so keep them: no JSON parsing before verification.
    app.setChildLoggerFactory(lazyChildLoggerFactory);
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: EVENT_BODY_LIMIT }, (_req, body, done) => done(null, body));

    const schema = <C extends number>(summary: string, errors: C[], extra: Record<string, unknown> = {}) => ({
      summary,
      tags: ['lark'],
      ...extra,
      response: {
        200: {
          description: 'Challenge echo or acknowledgement',
          type: 'object',
          properties: { challenge: { type: 'string' }, msg: { type: 'string' } },
        },
        ...errorResponses(...errors),
      },
    });
    // Fastify's own "incoming request" and "request completed" lines are off for pushes: each
    // group commit writes one info line for its pushes (EventsService), and each push one debug
    // line. Warnings (rejections) still come through, one per push.
    const options = { bodyLimit: EVENT_BODY_LIMIT, logLevel: 'warn' as const };

    app.post('/lark/events', { ...options, schema: schema('Receives Lark event pushes (URL verification, v1 and v2 events)', [400, 401, 413, 503]) }, async (request, reply) => {
      const store = services.config.storeApp;
      if (!store) {
        services.metrics.eventsRejected.inc({ reason: 'store_app_not_configured' });
        return reply.code(503).send({
          error: { code: 'store_app_not_configured', message: 'set LARK_APP_ID, LARK_APP_SECRET and LARK_VERIFICATION_TOKEN' },
        });
      }
      return receive(services, request, reply, store);
    });

    // A custom app's pushes: its console has a Verification Token and Encrypt Key of its own, so
    // they come to a path of their own and are checked with those (registered with the app).
    app.post<{ Params: { appId: string } }>(
      '/lark/events/:appId',
      {
        ...options,
        // The app id is looked up in Postgres, whose text cannot hold U+0000: a 400, not a 500.
        preValidation: rejectUnstorableUrl,
        schema: schema("Receives a registered custom app's event pushes, checked with that app's Verification Token and Encrypt Key", [400, 401, 404, 413], {
          params: { type: 'object', properties: { appId: { type: 'string', maxLength: 64 } }, required: ['appId'] },
        }),
      },
      async (request, reply) => {
        const keys = await services.apps.pushKeys(request.params.appId);
        if (!keys) {
          services.metrics.eventsRejected.inc({ reason: 'unknown_app' });
          return reply.code(404).send({
            error: { code: 'unknown_app', message: 'no custom app with push credentials is registered under this id (POST /api/v1/apps with verificationToken)' },
          });
        }
        return receive(services, request, reply, keys, keys.appId);
      },
    );
  };

/**
 * Verify, store, acknowledge. `appId` (a custom app's path): its pushes may name no other app,
 * since its credentials are its tenant admin's to hold; one naming none is taken as its own.
 */
async function receive(services: Services, request: FastifyRequest, reply: FastifyReply, keys: PushKeys, appId?: string): Promise<FastifyReply> {
  const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  try {
    const parsed = parsePush(
      raw,
      {
        timestamp: header(request.headers['x-lark-request-timestamp']),
        nonce: header(request.headers['x-lark-request-nonce']),
        signature: header(request.headers['x-lark-signature']),
      },
      keys,
    );
    if (parsed.kind === 'challenge') return reply.send({ challenge: parsed.challenge });
    if (appId && parsed.appId !== null && parsed.appId !== appId) {
      throw new PushRejectedError('app_mismatch', 400, 'the push names another app than the one of this request URL');
    }
    const outcome = await services.events.ingest(appId ? { ...parsed, appId } : parsed);
    if (services.log.isLevelEnabled('debug')) {
      // Not the event id: it is the sender's text, and could be anything.
      services.log.debug({ reqId: request.id, eventType: parsed.eventType, outcome, responseTime: reply.elapsedTime }, 'lark event acknowledged');
    }
    // Serialised once: every acknowledgement is the same bytes.
    return reply.type(JSON_TYPE).send(SUCCESS);
  } catch (err) {
    if (!(err instanceof PushRejectedError)) throw err;
    // The metric (public on /metrics) gets the reason the answer shows; the detail, which
    // an unsigned push must not learn (parse-push.ts, unverifiedPush), goes to the log only.
    services.metrics.eventsRejected.inc({ reason: err.reason });
    request.log.warn(err.detail ? { reason: err.reason, detail: err.detail } : { reason: err.reason }, 'lark push rejected');
    return reply.code(err.statusCode).send({ error: { code: err.reason, message: err.message } });
  }
}
