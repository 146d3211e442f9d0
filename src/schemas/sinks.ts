import { Type, type Static } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const SINK_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';

export const SinkParams = Type.Object({
  tenantKey: Type.String({ minLength: 1, maxLength: 128 }),
  name: Type.String({ pattern: SINK_NAME_PATTERN, description: 'The sink name a docs connector lists in config.sinks: lowercase letters, digits, - and _' }),
});

export const SinkBody = Type.Object(
  {
    type: StringEnum(['ragflow', 'dify']),
    url: Type.String({
      minLength: 1,
      maxLength: 2000,
      description:
        'RAGFlow: the server address (e.g. https://ragflow.example.com, its API is under /api/v1). Dify: the Service API base from Knowledge → Service API (https://api.dify.ai/v1 for Dify Cloud). https on a public host unless ALLOW_PRIVATE_SINKS=1',
    }),
    apiKey: Type.Optional(
      Type.String({
        minLength: 8,
        maxLength: 512,
        pattern: '^\\S+$',
        description: 'RAGFlow: a key from avatar → API (ragflow-…). Dify: a knowledge-base key (dataset-…). Stored sealed, never returned. Required to create; omit to keep the stored key',
      }),
    ),
    datasetId: Type.String({ minLength: 1, maxLength: 64, description: 'RAGFlow dataset id (32 hex digits) or Dify knowledge base id (UUID)' }),
    enabled: Type.Optional(Type.Boolean({ default: true })),
  },
  { additionalProperties: false },
);
export type SinkBodyType = Static<typeof SinkBody>;

const DocCounts = Type.Object({
  total: Type.Integer(),
  pending: Type.Integer(),
  delivering: Type.Integer(),
  done: Type.Integer(),
  failed: Type.Integer(),
  deleted: Type.Integer(),
});

export const Sink = Type.Object(
  {
    tenantKey: Type.String(),
    name: Type.String(),
    type: StringEnum(['ragflow', 'dify']),
    url: Type.String({ description: 'As stored (canonical form)' }),
    datasetId: Type.String(),
    enabled: Type.Boolean(),
    apiKeySet: Type.Boolean({ description: 'The key is stored (sealed); it is never returned' }),
    delivery: Type.Object({
      state: StringEnum(['idle', 'working', 'backing_off', 'disabled', 'not_fed'], {
        description: 'not_fed: no docs connector lists this sink in config.sinks; backing_off: the sink failed, delivery waits until nextAttemptAt',
      }),
      failures: Type.Integer({ description: 'Deliveries that failed in a row' }),
      nextAttemptAt: Nullable(Type.String({ format: 'date-time' })),
      lastError: Nullable(Type.String()),
      lastErrorAt: Nullable(Type.String({ format: 'date-time' })),
      lastDeliveredAt: Nullable(Type.String({ format: 'date-time' })),
    }),
    documents: DocCounts,
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { description: 'A knowledge-base sink; the API key is never shown' },
);

export const SinkDocStatusEnum = StringEnum(['pending', 'delivering', 'done', 'failed', 'deleted'], {
  description: 'pending: changed, not yet taken; delivering: uploading or parsing/indexing; done: the sink serves this version; failed: gave up (lastError), retried on the next change or a reconcile; deleted: removed from the sink',
});

export const SinkDocumentsQuery = Type.Object({
  status: Type.Optional(SinkDocStatusEnum),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String({ maxLength: 400 })),
});

export const SinkDocument = Type.Object({
  larkToken: Type.String({ description: "The Lark document's obj_token (also in the sink document's lark_token metadata)" }),
  title: Nullable(Type.String()),
  status: SinkDocStatusEnum,
  sinkDocumentId: Nullable(Type.String()),
  sinkDocumentName: Nullable(Type.String()),
  pushedHash: Nullable(Type.String({ description: 'The body hash the sink document holds' })),
  bodyHash: Nullable(Type.String({ description: 'The body hash docs_content has now (null once deleted)' })),
  sinkStatus: Nullable(Type.String({ description: "The sink's parse / indexing status as last seen (RAGFlow run, Dify indexing_status)" })),
  pendingDocumentId: Nullable(Type.String({ description: 'A newer version being uploaded or parsed' })),
  restarts: Type.Integer({ description: 'Restarts of a stuck or failed parse of the current version' }),
  lastError: Nullable(Type.String()),
  deliveredAt: Nullable(Type.String({ format: 'date-time' })),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const SinkDocumentList = Type.Object({
  documents: Type.Array(SinkDocument),
  nextCursor: Nullable(Type.String()),
});
