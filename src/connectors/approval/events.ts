import { SyncError } from '../../sync/sync-errors.js';
import type { ChildScope, ModuleEventHandler } from '../../sync/sync-module.js';
import type { ApprovalConfigType } from './config.js';
import type { LarkInstance } from './lark-types.js';
import { instanceRows } from './rows.js';

const INSTANCE_NOT_FOUND = 1390003;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** `operate_time` is a ms string, but an int64 for REVERTED (change-events.md §2.1): both are read. */
export function operateTime(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,16}$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * `approval_instance` (v1 envelope): the instance's detail is read again with its children (form
 * fields, tasks, timeline), exactly as the sync's detail read does: one call. Only for approval
 * codes in the connector's config. An event whose `operate_time` is older than one already applied
 * to the instance is a no-op (Lark holds later events of an instance until the earlier one is
 * acknowledged, but a retried push can still come late); without an operate_time, the push time
 * stands in. An instance Lark no longer knows (1390003) is marked deleted with its children.
 */
export const onApprovalInstance: ModuleEventHandler<ApprovalConfigType> = async (event, ctx) => {
  const approvalCode = str(event.approval_code);
  const instanceCode = str(event.instance_code);
  if (!approvalCode || !instanceCode || !ctx.config.approvalCodes.includes(approvalCode)) return 'ignored';
  const mark = { keys: [`approval_instances:${instanceCode}`], mark: operateTime(event.operate_time) ?? ctx.pushedAt.getTime() };
  if ((await ctx.fresh(mark.keys, mark.mark)).length === 0) return 'ignored';
  const readSeq = await ctx.startRead();
  let detail: LarkInstance | undefined;
  try {
    detail = await ctx.lark.call<LarkInstance>('approval.instances.get', {
      method: 'GET',
      path: `/open-apis/approval/v4/instances/${encodeURIComponent(instanceCode)}`,
      endpoint: '/open-apis/approval/v4/instances/:instance_id',
      query: { user_id_type: 'open_id' },
    });
  } catch (err) {
    if (!(err instanceof SyncError && err.larkCode === INSTANCE_NOT_FOUND)) throw err;
  }
  const children = ['approval_instance_fields', 'approval_tasks', 'approval_timeline'];
  if (!detail) {
    const replace: ChildScope[] = ['approval_instances', ...children].map((stream) => ({ stream, column: 'instance_code', value: instanceCode, keys: [] }));
    await ctx.apply({ readSeq, replaceChildren: replace, marks: mark });
    return 'processed';
  }
  const r = instanceRows(detail, instanceCode, approvalCode);
  const replace: ChildScope[] = [
    { stream: 'approval_tasks', column: 'instance_code', value: instanceCode, keys: r.tasks.map((x) => x.recordKey) },
    { stream: 'approval_timeline', column: 'instance_code', value: instanceCode, keys: r.timeline.map((x) => x.recordKey) },
  ];
  // An unreadable form leaves the stored fields alone, as in the sync.
  if (r.fields) replace.push({ stream: 'approval_instance_fields', column: 'instance_code', value: instanceCode, keys: r.fields.map((x) => x.recordKey) });
  await ctx.apply({
    readSeq,
    rows: { approval_instances: [r.instance], approval_tasks: r.tasks, approval_timeline: r.timeline, ...(r.fields ? { approval_instance_fields: r.fields } : {}) },
    replaceChildren: replace,
    marks: mark,
  });
  return 'processed';
};
