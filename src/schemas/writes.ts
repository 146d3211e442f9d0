import { Type, type Static } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';
import { BASE_URL_PATTERN } from '../connectors/base/config.js';

/** Most records one request may carry. */
export const MAX_WRITE_RECORDS = 10_000;

const Fields = Type.Record(Type.String({ minLength: 1, maxLength: 200 }), Type.Unknown(), {
  description: 'Field name -> value. Values in the obvious form are converted (see README "Write into Base"); unknown names are rejected per record',
});
const RecordId = Type.String({ pattern: '^rec[A-Za-z0-9]{1,40}$', description: 'A Base record id (rec…)' });

export const WriteTable = Type.Union(
  [
    Type.Object(
      {
        appToken: Type.String({ pattern: '^[A-Za-z0-9]{1,100}$' }),
        tableId: Type.String({ pattern: '^tbl[A-Za-z0-9]{1,47}$' }),
      },
      { additionalProperties: false },
    ),
    Type.Object({ url: Type.String({ pattern: BASE_URL_PATTERN, maxLength: 2000, description: 'A Base or wiki URL with ?table=' }) }, { additionalProperties: false }),
  ],
  { description: 'The table: its ids, or its URL as copied from the browser (Base or wiki)' },
);

export const WriteRequest = Type.Object(
  {
    table: WriteTable,
    op: StringEnum(['create', 'update', 'upsert', 'delete']),
    records: Type.Array(
      Type.Object(
        {
          fields: Type.Optional(Fields),
          recordId: Type.Optional(RecordId),
          match: Type.Optional(
            Type.Record(Type.String({ minLength: 1, maxLength: 200 }), Type.Union([Type.String({ maxLength: 10_000 }), Type.Number(), Type.Boolean()]), {
              minProperties: 1,
              maxProperties: 1,
              description: 'upsert: the one field whose value identifies the record, e.g. { "Order id": "A-17" }',
            }),
          ),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: MAX_WRITE_RECORDS },
    ),
    identity: Type.Optional(
      Type.Object({ user: Type.String({ pattern: '^ou_[A-Za-z0-9_-]{1,120}$' }) }, { additionalProperties: false, description: 'Write as a signed-in user instead of the app' }),
    ),
  },
  { additionalProperties: false },
);
export type WriteRequestType = Static<typeof WriteRequest>;

export const WriteParams = Type.Object({ id: Type.String({ pattern: '^[0-9]{1,18}$' }) });
export const WriteQuery = Type.Object({
  wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 60, description: 'Hold the answer until the write finishes, or this many seconds pass' })),
});
export const WriteListQuery = Type.Object({
  status: Type.Optional(StringEnum(['queued', 'running', 'succeeded', 'failed', 'partial', 'cancelled'])),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
});

const WriteStatus = StringEnum(['queued', 'running', 'succeeded', 'failed', 'partial', 'cancelled'], {
  description: 'partial: some records were written, others refused (see records[].error)',
});

export const WriteRecordResult = Type.Object({
  index: Type.Integer({ description: 'Position in the request' }),
  state: StringEnum(['pending', 'batched', 'ok', 'failed', 'cancelled']),
  recordId: Nullable(Type.String()),
  error: Nullable(Type.Object({ code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) })),
});

export const WriteSummary = Type.Object({
  id: Type.String(),
  tenantKey: Type.String(),
  table: Type.Object({ appToken: Type.String(), tableId: Type.String() }),
  op: StringEnum(['create', 'update', 'upsert', 'delete']),
  identity: Nullable(Type.Object({ user: Type.String() })),
  status: WriteStatus,
  counts: Type.Object({ total: Type.Integer(), ok: Type.Integer(), failed: Type.Integer(), pending: Type.Integer(), cancelled: Type.Integer() }),
  readBackPending: Type.Integer({
    description:
      'Records Lark holds whose rows are still being read back into base_records (seconds after the write ends; 0 once they are on the records feed)',
  }),
  warnings: Type.Array(Type.String(), { description: 'e.g. select options Lark will create' }),
  error: Nullable(Type.Object({ class: Type.String(), message: Type.String() })),
  upstreamCalls: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
});

export const Write = Type.Object({ ...WriteSummary.properties, records: Type.Array(WriteRecordResult) }, { description: "A write and each record's outcome" });
export const WriteList = Type.Object({ writes: Type.Array(WriteSummary) });
