import { perMinute } from '../../sync/pacer.js';
import { defineModule } from '../../sync/sync-module.js';
import { ApprovalConfig, type ApprovalConfigType } from './config.js';
import { instancesPhase } from './instances.phase.js';
import { approvalForm } from './form.js';
import { onApprovalCc, onApprovalInstance, onApprovalTask } from './events.js';

/**
 * Approval instances with their form fields, tasks and timeline. Incremental by creation time with
 * a rolling lookback; no deletion sweep, because an instance that ages out of the backfill window
 * is not gone upstream.
 */
export const approvalModule = defineModule<ApprovalConfigType>({
  name: 'approval',
  // A full pass re-lists backfillDays of windows (about 9 min per approval code at the list
  // limit): weekly refreshes instances that changed after the lookback, such as old PENDING ones.
  fullPassEveryHours: 24 * 7,
  streams: {
    approval_instances: {
      columns: ['approval_code', 'instance_code', 'approval_name', 'status', 'serial_number', 'open_id', 'user_id', 'department_id', 'start_time', 'end_time'],
      types: { start_time: 'timestamptz', end_time: 'timestamptz' },
    },
    approval_instance_fields: { columns: ['instance_code', 'path', 'widget_id', 'name', 'type', 'value'], types: { value: 'jsonb' } },
    approval_tasks: {
      columns: ['instance_code', 'task_id', 'status', 'node_id', 'node_name', 'type', 'open_id', 'user_id', 'start_time', 'end_time'],
      types: { start_time: 'timestamptz', end_time: 'timestamptz' },
    },
    approval_timeline: {
      columns: ['instance_code', 'position', 'type', 'create_time', 'open_id', 'user_id', 'task_id', 'comment'],
      types: { position: 'integer', create_time: 'timestamptz' },
    },
  },
  limits: {
    // Not stated upstream (unconfirmed); peers quote 100/min, so be conservative.
    'approval.instances.list': perMinute(100, 5),
    'approval.instances.get': perMinute(1000, 20),
  },
  form: approvalForm,
  configSchema: ApprovalConfig,
  warnings: (config) =>
    config.lookbackDays > config.backfillDays
      ? [`lookbackDays (${config.lookbackDays}) exceeds backfillDays (${config.backfillDays}); incremental runs re-read at most backfillDays`]
      : [],
  phases: [instancesPhase],
  events: { approval_instance: onApprovalInstance, approval_task: onApprovalTask, approval_cc: onApprovalCc },
});
