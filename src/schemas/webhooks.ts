import { Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';
import { WEBHOOK_EVENT_TYPES } from '../webhooks/event-types.js';
import { MAX_OVERLAP_SECONDS } from '../webhooks/webhooks.service.js';

const EventTypes = Type.Array(StringEnum(WEBHOOK_EVENT_TYPES), {
  minItems: 1,
  maxItems: WEBHOOK_EVENT_TYPES.length * 4,
  description: `Events to receive: ${WEBHOOK_EVENT_TYPES.join(', ')}`,
});
const TenantKeys = Nullable(
  Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
    minItems: 1,
    maxItems: 1000,
    description: 'Only these tenants; null or absent: every tenant',
  }),
);
const Url = Type.String({
  minLength: 1,
  maxLength: 2000,
  description: 'Where deliveries are POSTed: https:// on a public host (http:// and private hosts only with ALLOW_PRIVATE_WEBHOOKS=1)',
});
const Description = Nullable(Type.String({ maxLength: 500 }));

export const WebhookParams = Type.Object({ id: Type.String({ pattern: '^[0-9]{1,18}$' }) });
export const DeliveryParams = Type.Object({
  id: Type.String({ pattern: '^[0-9]{1,18}$' }),
  deliveryId: Type.String({ pattern: '^[0-9]{1,18}$' }),
});

export const CreateWebhook = Type.Object(
  { url: Url, eventTypes: EventTypes, tenantKeys: Type.Optional(TenantKeys), description: Type.Optional(Description) },
  { additionalProperties: false },
);

export const UpdateWebhook = Type.Object(
  {
    url: Type.Optional(Url),
    eventTypes: Type.Optional(EventTypes),
    tenantKeys: Type.Optional(TenantKeys),
    description: Type.Optional(Description),
    enabled: Type.Optional(Type.Boolean({ description: 'true enables a disabled webhook (its pending deliveries go on); false disables it' })),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const RotateSecret = Type.Object(
  {
    overlapSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_OVERLAP_SECONDS,
        default: 86_400,
        description: 'How long the previous secret keeps signing beside the new one (both signatures are sent); 0 ends it at once',
      }),
    ),
  },
  { additionalProperties: false },
);

export const WebhookListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 100 })),
  after: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'The last id of the previous page' })),
});

export const DeliveryListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
  cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'nextCursor of the previous page' })),
  status: Type.Optional(StringEnum(['pending', 'delivered', 'failed', 'coalesced'])),
  tenantKey: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
});

export const Webhook = Type.Object({
  id: Type.String(),
  url: Type.String(),
  description: Nullable(Type.String()),
  eventTypes: Type.Array(StringEnum(WEBHOOK_EVENT_TYPES)),
  tenantKeys: Nullable(Type.Array(Type.String())),
  status: StringEnum(['enabled', 'disabled'], { description: 'disabled: by the operator, or after its endpoint failed every attempt for 3 days' }),
  disabledReason: Nullable(Type.String({ description: 'Why it is disabled' })),
  disabledAt: Nullable(Type.String({ format: 'date-time' })),
  failingSince: Nullable(Type.String({ format: 'date-time', description: 'First failed attempt since the last success' })),
  lastFailureAt: Nullable(Type.String({ format: 'date-time' })),
  lastSuccessAt: Nullable(Type.String({ format: 'date-time', description: 'Updated at most once a minute' })),
  previousSecretExpiresAt: Nullable(Type.String({ format: 'date-time', description: 'During a rotation overlap: until when the previous secret signs too' })),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const WebhookWithSecret = Type.Object(
  {
    ...Webhook.properties,
    secret: Type.String({ description: 'The signing secret (whsec_…), shown this once: store it with the receiver' }),
  },
  { description: 'The webhook and its signing secret, shown only in this answer' },
);

export const WebhookList = Type.Object({ webhooks: Type.Array(Webhook), nextCursor: Nullable(Type.String()) });

export const Delivery = Type.Object({
  id: Type.String(),
  messageId: Type.String({ description: 'The webhook-id header: the same on every attempt and resend' }),
  eventType: StringEnum(WEBHOOK_EVENT_TYPES),
  tenantKey: Type.String(),
  status: StringEnum(['pending', 'delivered', 'failed', 'coalesced'], {
    description: 'failed: given up after the retry window; coalesced: sent as part of delivery coalescedInto (records.changed)',
  }),
  coalescedInto: Nullable(Type.String()),
  attemptCount: Type.Integer(),
  nextAttemptAt: Nullable(Type.String({ format: 'date-time' })),
  lastStatusCode: Nullable(Type.Integer()),
  lastError: Nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  deliveredAt: Nullable(Type.String({ format: 'date-time' })),
  attempts: Type.Array(
    Type.Object({
      at: Type.String({ format: 'date-time' }),
      statusCode: Nullable(Type.Integer()),
      latencyMs: Type.Integer(),
      error: Nullable(Type.String()),
    }),
  ),
});

export const DeliveryList = Type.Object({ deliveries: Type.Array(Delivery), nextCursor: Nullable(Type.String()) });
