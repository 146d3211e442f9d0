import { Type } from '@sinclair/typebox';
import { STREAM_CATALOG } from '../connectors/index.js';
import { Nullable, StringEnum } from './common.js';

export const STREAM_NAMES = STREAM_CATALOG.names();

export const RecordsParams = Type.Object({
  tenantKey: Type.String({ minLength: 1, maxLength: 128 }),
  stream: StringEnum(STREAM_NAMES, { description: 'A stream; an unknown one answers 404 stream_not_found' }),
});

export const RecordsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'nextCursor from the previous page' })),
  updatedSince: Type.Optional(
    Type.String({
      format: 'date-time',
      description:
        'Only rows whose content or deletion changed at or after this instant (RFC 3339, with an offset). A filter for a ' +
        'first look, not a way to follow changes: a write stamps its start time, so it can land behind a time already asked for; follow with the cursor',
    }),
  ),
});

export const StreamRecord = Type.Object({
  key: Type.String({ description: 'The natural key upstream (e.g. open_id, instance_code)' }),
  deletedAt: Nullable(Type.String({ format: 'date-time', description: 'Set once the row is gone upstream; the row stays readable' })),
  updatedAt: Type.String({ format: 'date-time', description: 'Last change of content or deletion' }),
  data: Type.Unsafe<Record<string, unknown>>({
    type: 'object',
    additionalProperties: true,
    description: "The stream's columns, first_seen_at, and raw (Lark's payload as received)",
  }),
});

export const RecordPage = Type.Object(
  {
    records: Type.Array(StreamRecord),
    nextCursor: Nullable(
      Type.String({
        description:
          'Pass as `cursor` for the next page; null once this page reached the end of what is committed (to read everything once, ' +
          'follow it until null)',
      }),
    ),
    resumeCursor: Type.String({
      description:
        'Where this page ended (the cursor you sent when it is empty). To follow changes forever, keep it and ask again with it ' +
        'as `cursor`: rows changed since come again, in change order, and none already served comes back unless it changed',
    }),
  },
  {
    description:
      'One page of rows in change order: a row changed after it was read comes again later, none is skipped (rows of writes ' +
      'still in progress are held back until they commit, so no row can appear behind a cursor already handed out)',
  },
);
