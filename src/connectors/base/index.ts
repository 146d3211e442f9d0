import { perMinute, perSecond, type RateLimit } from '../../sync/pacer.js';
import { defineModule } from '../../sync/sync-module.js';
import type { StreamDef } from '../../sync/streams.js';
import { BaseConfig, tableRef, type BaseConfigType } from './config.js';
import { tablesPhase } from './tables.phase.js';
import { baseForm } from './form.js';
import { BASE_EVENTS, BASE_MERGERS } from './events.js';

/**
 * Base (Bitable) tables: each configured table's field schema (always listed whole and swept),
 * then its records, incrementally by the table's ModifiedTime field when it has one; full runs
 * list everything and sweep deletions.
 */
/** Base's streams: the write API (writes/) stores the records it wrote the same way a sync does. */
export const BASE_STREAMS = {
  base_records: {
    columns: ['app_token', 'table_id', 'record_id', 'fields', 'created_by', 'created_time', 'last_modified_by', 'last_modified_time'],
    types: { fields: 'jsonb', created_by: 'jsonb', created_time: 'timestamptz', last_modified_by: 'jsonb', last_modified_time: 'timestamptz' },
    // An attachment cell's download links are signed afresh on every read (the file is the same):
    // they would make every re-read rewrite the row and announce it on the records feed again.
    volatile: { objectsWith: 'file_token', keys: ['url', 'tmp_url'] },
  },
  base_fields: {
    columns: ['app_token', 'table_id', 'field_id', 'field_name', 'type', 'ui_type', 'is_primary'],
    types: { type: 'integer', is_primary: 'boolean' },
  },
} as const satisfies Record<string, StreamDef>;

/** Wiki lookups: 100/min documented for child nodes; get_node assumed the same (unconfirmed). */
export const WIKI_GET_NODE_LIMIT = perMinute(100, 5);

/** Base's reads; the write API (writes/) draws from the same budgets. */
export const BASE_LIMITS = {
  'bitable.records.search': perSecond(20),
  'bitable.fields.list': perSecond(20),
  // 20/s, at most 100 ids a call (bitable.md §2.6): confirms deletion candidates.
  'bitable.records.batch_get': perSecond(20),
  'wiki.get_node': WIKI_GET_NODE_LIMIT,
} satisfies Record<string, RateLimit>;

export const baseModule = defineModule<BaseConfigType>({
  name: 'base',
  // Incremental reads cannot see deletions; a daily full pass marks them.
  fullPassEveryHours: 24,
  streams: BASE_STREAMS,
  limits: BASE_LIMITS,
  userScopes: ['bitable:app:readonly'],
  form: baseForm,
  configSchema: BaseConfig,
  warnings: (config) =>
    config.tables.some((t) => tableRef(t)?.viewId)
      ? ['a table with a view is re-read whole on every run: Lark ignores view_id when a modified-time filter is set']
      : [],
  phases: [tablesPhase],
  events: BASE_EVENTS,
  mergeEvents: BASE_MERGERS,
});
