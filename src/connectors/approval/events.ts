import { SyncError } from '../../sync/sync-errors.js';
import type { ChildScope, ModuleEventContext, ModuleEventHandler } from '../../sync/sync-module.js';
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
export const onApprovalInstance: ModuleEventHandler<ApprovalConfigType> = (event, ctx) => reReadInstance(event, ctx, operateTime(event.operate_time));

/**
 * `approval_task` (v1 envelope, change-events.md §2.1): a task of the instance changed (approved,
 * transferred, rolled back...), often with no `approval_instance` event at all (the instance stays
 * PENDING while its nodes advance). The payload names the task but not the instance as it now is,
 * so the whole instance is read again, as for `approval_instance`: one call, same mark (the
 * instance's), so an older task event after a newer instance event changes nothing.
 */
export const onApprovalTask: ModuleEventHandler<ApprovalConfigType> = (event, ctx) => reReadInstance(event, ctx, operateTime(event.operate_time));

/**
 * `approval_cc` (v1 envelope): someone was cc'd (`operate: CREATE`, a CC entry in the timeline) or
 * read it (`READ`). Its time is `create_time` (a ms number; a string is read too). Whether a READ
 * carries the read time or the cc's creation time is not stated (unconfirmed): if the latter, an
 * old READ is judged stale and ignored, which loses nothing, since the detail larksync stores
 * shows no read state.
 */
export const onApprovalCc: ModuleEventHandler<ApprovalConfigType> = (event, ctx) => reReadInstance(event, ctx, operateTime(event.create_time));

/** One re-read of the instance an approval event names, ordered by the instance's mark. */
async function reReadInstance(
  event: Record<string, unknown>,
  ctx: ModuleEventContext<ApprovalConfigType>,
  eventTime: number | undefined,
): Promise<'processed' | 'ignored'> {
  const approvalCode = str(event.approval_code);
  const instanceCode = str(event.instance_code);
  if (!approvalCode || !instanceCode || !ctx.config.approvalCodes.includes(approvalCode)) return 'ignored';
  const mark = { keys: [`approval_instances:${instanceCode}`], mark: eventTime ?? ctx.pushedAt.getTime() };
  const { fresh, readSeq } = await ctx.freshRead(mark.keys, mark.mark);
  if (fresh.length === 0) return 'ignored';
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
}
