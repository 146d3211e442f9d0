import type { SyncModuleDef } from '../../sync/sync-module.js';
import { BaseConfig, tableRef, type BaseConfigType } from './config.js';
import { tablesPhase } from './tables.phase.js';

/**
 * Base (Bitable) tables: each configured table's field schema (always listed whole and swept),
 * then its records, incrementally by the table's ModifiedTime field when it has one; full runs
 * list everything and sweep deletions.
 */
export const baseModule: SyncModuleDef<BaseConfigType> = {
  name: 'base',
  // Incremental reads cannot see deletions; a daily full pass marks them.
  fullPassEveryHours: 24,
  streams: ['base_records', 'base_fields'],
  configSchema: BaseConfig,
  warnings: (config) =>
    config.tables.some((t) => tableRef(t)?.viewId)
      ? ['a table with a view is re-read whole on every run: Lark ignores view_id when a modified-time filter is set']
      : [],
  phases: [tablesPhase],
};
