import type { SyncModuleName } from './sync.tables.js';

/**
 * Members that Lark changes on every read without a change of content: in any object of the row
 * that has the member `objectsWith`, the members `keys` do not count toward the content hash. They
 * are still stored (with the value of the row's last real change).
 */
export interface VolatileValues {
  objectsWith: string;
  keys: readonly string[];
}

/**
 * Public stream names (contract) -> their table's module-specific columns. Each stream is stored
 * in a table of the same name; the shared columns are in the sync migration.
 */
export const STREAMS = {
  approval_instances: {
    module: 'approval',
    columns: ['approval_code', 'instance_code', 'approval_name', 'status', 'serial_number', 'open_id', 'user_id', 'department_id', 'start_time', 'end_time'],
  },
  approval_instance_fields: { module: 'approval', columns: ['instance_code', 'path', 'widget_id', 'name', 'type', 'value'] },
  approval_tasks: {
    module: 'approval',
    columns: ['instance_code', 'task_id', 'status', 'node_id', 'node_name', 'type', 'open_id', 'user_id', 'start_time', 'end_time'],
  },
  approval_timeline: {
    module: 'approval',
    columns: ['instance_code', 'position', 'type', 'create_time', 'open_id', 'user_id', 'task_id', 'comment'],
  },
  base_records: {
    module: 'base',
    columns: ['app_token', 'table_id', 'record_id', 'fields', 'created_by', 'created_time', 'last_modified_by', 'last_modified_time'],
    // An attachment cell's download links are signed afresh on every read (the file is the same):
    // they would make every re-read rewrite the row and announce it on the records feed again.
    volatile: { objectsWith: 'file_token', keys: ['url', 'tmp_url'] },
  },
  base_fields: { module: 'base', columns: ['app_token', 'table_id', 'field_id', 'field_name', 'type', 'ui_type', 'is_primary'] },
  attendance_flows: {
    module: 'attendance',
    columns: ['record_id', 'user_id', 'creator_id', 'check_time', 'location_name', 'type', 'is_field', 'is_wifi'],
  },
  contact_departments: {
    module: 'contact',
    columns: ['open_department_id', 'department_id', 'parent_department_id', 'name', 'is_deleted'],
  },
  contact_users: {
    module: 'contact',
    columns: ['open_id', 'union_id', 'user_id', 'name', 'department_ids', 'is_frozen', 'is_resigned', 'is_activated', 'is_exited', 'is_unjoin'],
  },
} as const satisfies Record<string, { module: SyncModuleName; columns: readonly string[]; volatile?: VolatileValues }>;

export type StreamName = keyof typeof STREAMS;

/** Columns holding JSON (written as jsonb). */
export const JSON_COLUMNS: ReadonlySet<string> = new Set(['value', 'fields', 'created_by', 'last_modified_by', 'department_ids']);

export function volatileOf(stream: StreamName): VolatileValues | undefined {
  const def = STREAMS[stream];
  return 'volatile' in def ? def.volatile : undefined;
}

export function isStreamName(name: string): name is StreamName {
  return Object.prototype.hasOwnProperty.call(STREAMS, name);
}

/** One row for a stream table: the natural key as text, a partition for deletion sweeps, the raw payload. */
export interface StreamRow {
  recordKey: string;
  partition?: string;
  raw: unknown;
  columns: Record<string, unknown>;
}
