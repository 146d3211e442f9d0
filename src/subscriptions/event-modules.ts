/**
 * Which module a stored Lark event speaks for (../shared/lark/change-events.md). Read from the
 * `lark_events` table's `event_type`, so the health of a module's events does not depend on how
 * (or whether) the events are applied.
 *
 * - contact: `contact.user.*_v3`, `contact.department.*_v3`, `contact.scope.updated_v3` (and the
 *   legacy v1 names, in case the console has them);
 * - approval: the v1 `approval_instance` / `approval_task` / `approval_cc`, the definition's
 *   `approval.approval.updated_v4`, and the special (attendance-related) approval events;
 * - base: `drive.file.bitable_record_changed_v1`, `drive.file.bitable_field_changed_v1`;
 * - docs: every other `drive.file.*` event (edit, title, trash, delete). `drive.file.edit_v1` also
 *   fires for Base edits; its `file_type` is inside the sealed payload, so a Base edit counts as a
 *   docs event too (it only ever makes docs look livelier when its own subscriptions are in order).
 */
const EXACT: Readonly<Record<string, string>> = {
  'drive.file.bitable_record_changed_v1': 'base',
  'drive.file.bitable_field_changed_v1': 'base',
  approval_instance: 'approval',
  approval_task: 'approval',
  approval_cc: 'approval',
  leave_approval: 'approval',
  leave_approvalV2: 'approval',
  work_approval: 'approval',
  shift_approval: 'approval',
  out_approval: 'approval',
  trip_approval: 'approval',
  remedy_approval: 'approval',
  remedy_approval_v2: 'approval',
  user_add: 'contact',
  user_update: 'contact',
  user_leave: 'contact',
  user_status_change: 'contact',
  dept_add: 'contact',
  dept_update: 'contact',
  dept_delete: 'contact',
  contact_scope_change: 'contact',
};

export function moduleOfEvent(eventType: string): string | undefined {
  const exact = EXACT[eventType];
  if (exact) return exact;
  if (eventType.startsWith('contact.user.') || eventType.startsWith('contact.department.') || eventType === 'contact.scope.updated_v3') {
    return 'contact';
  }
  if (eventType.startsWith('approval.approval.') || eventType.startsWith('approval.instance.')) return 'approval';
  if (eventType.startsWith('drive.file.')) return 'docs';
  return undefined;
}

/** The modules Lark sends change events for; the others (attendance) are polled only. */
export const EVENT_MODULES = ['contact', 'approval', 'base', 'docs'] as const;

/** Modules whose events come only after a subscribe call; contact's follow the app's contact scope. */
export const SUBSCRIBED_MODULES = ['approval', 'base', 'docs'] as const;

export const hasEvents = (module: string): boolean => (EVENT_MODULES as readonly string[]).includes(module);
export const needsSubscribeCalls = (module: string): boolean => (SUBSCRIBED_MODULES as readonly string[]).includes(module);
