import type { ColumnType, Generated, JSONColumnType, Selectable } from 'kysely';

export type SyncModuleName = 'approval' | 'base' | 'attendance' | 'contact';
export type SyncMode = 'incremental' | 'full';
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface ConnectorsTable {
  tenant_key: string;
  module: SyncModuleName;
  enabled: boolean;
  interval_minutes: number;
  config: JSONColumnType<Record<string, unknown>, string, string>;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}
export type ConnectorRow = Selectable<ConnectorsTable>;

export interface SyncRunsTable {
  id: Generated<string>;
  tenant_key: string;
  module: SyncModuleName;
  mode: SyncMode;
  trigger: 'api' | 'schedule';
  status: RunStatus;
  created_at: ColumnType<Date, never, never>;
  started_at: Date | null;
  finished_at: Date | null;
  heartbeat_at: Date | null;
  lease_id: string | null;
  counts: JSONColumnType<Record<string, number>, string | undefined, string>;
  pages: Generated<number>;
  upstream_calls: Generated<number>;
  throttled_waits: Generated<number>;
  error_class: string | null;
  error_message: string | null;
}
export type SyncRunRow = Selectable<SyncRunsTable>;

export interface StreamStatesTable {
  tenant_key: string;
  module: string;
  stream: string;
  state: JSONColumnType<Record<string, unknown>, string, string>;
  run_id: string | null;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

/** Record keys a run saw, one array per committed page, for its deletion sweeps. */
export interface SyncSeenPagesTable {
  run_id: string;
  stream: string;
  partition: string;
  keys: string[];
}

export interface RateBucketsTable {
  bucket: string;
  tokens: number;
  updated_at: Date;
}

/** Columns every stream table has (see the sync migration). */
export interface StreamTableBase {
  tenant_key: string;
  record_key: string;
  partition: string;
  raw: unknown;
  content_hash: string;
  first_seen_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  change_seq: string;
  last_run_id: string | null;
}
