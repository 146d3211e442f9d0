/**
 * Lark's edit times are whole seconds, and two edits within one second share one
 * (obj_edit_time, modified_time, latest_modify_time). A body read that began before the end of its
 * edit time's second may have missed a later edit of that second, which no later listing shows as
 * newer. One more second covers a Lark clock up to that far behind ours (unconfirmed; NTP keeps it
 * far smaller).
 *
 * Two readers follow this rule: the content phase (a docx read too early is stored `unsettled` and
 * its revision checked later) and the sinks' delivery (a Drive file, which has no revision to
 * check, is downloaded only once its edit's second is over).
 */
export const SETTLE_MS = 2_000;

/** How long a read must wait from `now` (ms) to see every edit of `editedTime`'s second: 0 when it need not. */
export const msUntilSettled = (editedTime: string | Date | null, now: number): number =>
  editedTime === null ? 0 : Math.max(0, new Date(editedTime).getTime() + SETTLE_MS - now);

/** Whether a body read that began at `startedAt` (ms) is certain to include every edit of `editedTime`'s second. */
export const settled = (editedTime: string | Date | null, startedAt: number): boolean => msUntilSettled(editedTime, startedAt) === 0;
