import type { ColumnType, Generated, Selectable } from 'kysely';

export type WriteOp = 'create' | 'update' | 'upsert' | 'delete';
export type WriteStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'partial' | 'cancelled';
export type RecordState = 'pending' | 'batched' | 'ok' | 'failed' | 'cancelled';

export interface WriteRecordError {
  code: string;
  message: string;
  field?: string;
}

export interface BaseWritesTable {
  id: Generated<string>;
  tenant_key: string;
  app_id: string;
  app_token: string;
  table_id: string;
  op: WriteOp;
  identity_user: string | null;
  status: WriteStatus;
  idempotency_key: string | null;
  request_hash: string;
  record_count: number;
  warnings: ColumnType<string[], string | undefined, string>;
  error_class: string | null;
  error_message: string | null;
  upstream_calls: Generated<number>;
  created_at: ColumnType<Date, never, never>;
  started_at: Date | null;
  finished_at: Date | null;
}
export type BaseWriteRow = Selectable<BaseWritesTable>;

export interface BaseWriteRecordsTable {
  write_id: string;
  idx: number;
  input: ColumnType<Record<string, unknown>, string, string>;
  state: RecordState;
  batch_id: string | null;
  record_id: string | null;
  error: ColumnType<WriteRecordError | null, string | null, string | null>;
}
export type BaseWriteRecordRow = Selectable<BaseWriteRecordsTable>;

export interface BaseWriteBatchesTable {
  id: Generated<string>;
  app_id: string;
  app_token: string;
  table_id: string;
  /** the Lark call: batch_create, batch_update or batch_delete */
  op: 'create' | 'update' | 'delete';
  identity_user: string | null;
  client_token: string;
  /** the request body as sent (and sent again, with the same client_token, on a retry) */
  body: ColumnType<Record<string, unknown>, string, string>;
  status: 'planned' | 'written' | 'done' | 'failed';
  attempts: Generated<number>;
  created_at: ColumnType<Date, never, never>;
  finished_at: Date | null;
}
export type BaseWriteBatchRow = Selectable<BaseWriteBatchesTable>;
