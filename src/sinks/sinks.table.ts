import type { ColumnType, Insertable, JSONColumnType, Selectable, Updateable } from 'kysely';

export type SinkType = 'ragflow' | 'dify';

/** What the delivery learnt about a sink (kept across jobs). */
export interface SinkRemoteState {
  /** Dify: ids of the metadata fields larksync uses, by name; false when the server has no metadata API. */
  difyFields?: Record<string, string> | false;
  /** RAGFlow: the document update method this server accepts (PATCH from v0.25, PUT before). */
  ragflowUpdate?: 'PATCH' | 'PUT';
  /** Dify: the knowledge base's indexing technique and doc_form, once read. */
  difyDataset?: { indexingTechnique: string | null; docForm: string | null };
}

export interface SinksTable {
  tenant_key: string;
  name: string;
  type: SinkType;
  url: string;
  dataset_id: string;
  api_key_sealed: Buffer;
  enabled: boolean;
  generation: ColumnType<number, number | undefined, number>;
  /** xid8 as text */
  cursor_xid: ColumnType<string, string | undefined, string>;
  cursor_seq: ColumnType<string, string | undefined, string>;
  rebuild_requested: ColumnType<boolean, boolean | undefined, boolean>;
  remote_state: JSONColumnType<SinkRemoteState, string | undefined, string>;
  failures: ColumnType<number, number | undefined, number>;
  next_attempt_at: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
  last_delivered_at: Date | null;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}
export type SinkRow = Selectable<SinksTable>;
export type NewSinkRow = Insertable<SinksTable>;
export type SinkUpdate = Updateable<SinksTable>;

export type SinkDocStep = 'idle' | 'uploading' | 'processing';
export type SinkDocStatus = 'pending' | 'delivering' | 'done' | 'failed' | 'deleted';

export interface SinkDocumentsTable {
  tenant_key: string;
  sink_name: string;
  doc_token: string;
  generation: number;
  want_version: ColumnType<string, string | undefined, string>;
  done_version: ColumnType<string, string | undefined, string>;
  step: ColumnType<SinkDocStep, SinkDocStep | undefined, SinkDocStep>;
  status: ColumnType<SinkDocStatus, SinkDocStatus | undefined, SinkDocStatus>;
  title: string | null;
  remote_id: string | null;
  remote_name: string | null;
  pushed_hash: string | null;
  pushed_meta: string | null;
  pending_id: string | null;
  pending_name: string | null;
  pending_hash: string | null;
  pending_meta: string | null;
  obsolete_ids: ColumnType<string[], string[] | undefined, string[]>;
  remote_status: string | null;
  check_strays: ColumnType<boolean, boolean | undefined, boolean>;
  restarts: ColumnType<number, number | undefined, number>;
  errors: ColumnType<number, number | undefined, number>;
  process_started_at: Date | null;
  next_check_at: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
  delivered_at: Date | null;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}
export type SinkDocRow = Selectable<SinkDocumentsTable>;
export type SinkDocUpdate = Updateable<SinkDocumentsTable>;
