import type { ColumnType, Generated, JSONColumnType, Selectable } from 'kysely';

/**
 * A module's public name. sync/ does not know which modules exist: the registry
 * (connectors/index.ts) does, and names are checked against it where they come in (the API).
 */
export type SyncModuleName = string;
export type SyncMode = 'incremental' | 'full';
/** `partial`: finished, but some items (a Base table, an approval code, a department) failed; see item_errors. */
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'partial' | 'failed' | 'cancelled';

/** One item of a run that failed while the others went on. */
export interface ItemError {
  /** what kind of item: `base_table`, `approval_code`, `department` */
  item: string;
  /** the item's id as configured (e.g. `<appToken>/<tableId>`) */
  id: string;
  errorClass: string;
  /** says what to do about it */
  message: string;
}

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
  item_errors: JSONColumnType<ItemError[], string | undefined, string>;
  /** rows marked deleted after their absence was confirmed */
  deletions_confirmed: Generated<number>;
  /** rows a complete listing missed that turned out to exist (or could not be confirmed gone) */
  deletion_candidates_alive: Generated<number>;
  /** values stored with U+FFFD in place of a NUL or a lone surrogate */
  values_sanitized: Generated<number>;
  /** times the run was taken over after its slice went silent */
  resumes: Generated<number>;
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

/** Rows a complete listing missed, awaiting confirmation before they are marked deleted. */
export interface SyncDeleteCandidatesTable {
  tenant_key: string;
  stream: string;
  partition: string;
  record_key: string;
  /** the run whose listing missed it */
  run_id: string;
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
  /** the writing transaction (xid8, as text): with change_seq, the row's position in the records feed */
  change_xid: string;
  last_run_id: string | null;
  /** sync_read_seq of the read that wrote the row (see read-seq.ts); null: written before reads were numbered */
  read_seq: string | null;
}
