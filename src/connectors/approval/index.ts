import type { SyncModuleDef } from '../../sync/sync-module.js';
import { ApprovalConfig, type ApprovalConfigType } from './config.js';
import { instancesPhase } from './instances.phase.js';

/**
 * Approval instances with their form fields, tasks and timeline. Incremental by creation time with
 * a rolling lookback; no deletion sweep, because an instance that ages out of the backfill window
 * is not gone upstream.
 */
export const approvalModule: SyncModuleDef<ApprovalConfigType> = {
  name: 'approval',
  // A full pass re-lists backfillDays of windows (about 9 min per approval code at the list
  // limit): weekly refreshes instances that changed after the lookback, such as old PENDING ones.
  fullPassEveryHours: 24 * 7,
  streams: ['approval_instances', 'approval_instance_fields', 'approval_tasks', 'approval_timeline'],
  configSchema: ApprovalConfig,
  warnings: (config) =>
    config.lookbackDays > config.backfillDays
      ? [`lookbackDays (${config.lookbackDays}) exceeds backfillDays (${config.backfillDays}); incremental runs re-read at most backfillDays`]
      : [],
  phases: [instancesPhase],
};
