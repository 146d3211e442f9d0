import type { ColumnType, Generated, Selectable } from 'kysely';

export type EventStatus = 'pending' | 'processed' | 'ignored' | 'failed';

export interface LarkEventsTable {
  id: Generated<string>;
  /** v1 `uuid` or v2 `header.event_id`: the de-duplication key */
  event_id: string;
  app_id: string | null;
  schema_version: 'v1' | 'v2';
  event_type: string;
  tenant_key: string | null;
  payload_sealed: Buffer;
  status: Generated<EventStatus>;
  attempts: Generated<number>;
  last_error: string | null;
  received_at: ColumnType<Date, Date | undefined, never>;
  processed_at: Date | null;
  /** set by the store statement from the tenant key (or app id); null on rows stored before shards */
  shard: ColumnType<number | null, never, never>;
}

/** A shard whose drain job is queued and has not started yet is awake. */
export interface LarkEventShardsTable {
  shard: number;
  awake: Generated<boolean>;
}
export type LarkEventRow = Selectable<LarkEventsTable>;
