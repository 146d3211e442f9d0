import { Type } from '@sinclair/typebox';
import { definePhase, type ChildScope, type SyncContext } from '../../sync/sync-module.js';
import { SyncError, isItemFailure } from '../../sync/sync-errors.js';
import type { ItemError } from '../../sync/sync.tables.js';
import type { StreamName, StreamRow } from '../../sync/streams.js';
import type { SyncMode } from '../../sync/sync.tables.js';
import type { ApprovalConfigType } from './config.js';
import type { LarkInstance, LarkInstanceList } from './lark-types.js';
import { instanceRows } from './rows.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/**
 * Longest creation-time window per list call. Lark documents no maximum, but the Feishu doc
 * advises windows under 10 h (a wide window over a busy definition is slow or truncated upstream).
 */
export const MAX_WINDOW_MS = 10 * HOUR;
/** The documented maximum page size of the list API. */
export const LIST_PAGE_SIZE = 100;
/** Details committed per page: small enough that a failure loses little work, big enough to amortise a commit. */
export const DETAIL_BATCH = 20;
const DETAIL_CONCURRENCY = 5;
const INSTANCE_NOT_FOUND = 1390003;
const APPROVAL_CODE_NOT_FOUND = 1390002;
const CHILD_STREAMS: StreamName[] = ['approval_instance_fields', 'approval_tasks', 'approval_timeline'];

/** One pass over the configured approval codes, window by window. */
export interface Pass {
  mode: SyncMode;
  /** The codes of this pass (a config change applies to the next pass). */
  codes: string[];
  /** Creation-time end of the pass (Unix ms), fixed when it starts. */
  until: number;
  codeIndex: number;
  /** Start of the current window (Unix ms); it ends at min(start + MAX_WINDOW_MS, until). */
  windowStart: number;
  pageToken: string | null;
  /** Listed instance codes of the current page whose details are still to be read. */
  pending: string[];
  /**
   * The current code's listing stopped early somewhere (has_more without a page_token, review
   * L5): its cursor is not advanced when it finishes, so the next run reads the windows again.
   */
  incomplete?: boolean;
  /** codes finished without failing, in this pass */
  codesOk?: number;
}

export interface ApprovalState {
  v: 1;
  /** Per approval code: creation time up to which a pass completed (the incremental cursor). */
  cursors: Record<string, number>;
  /** The unfinished pass; a failed or crashed run leaves it for the next run to resume. */
  pass: Pass | null;
}

function isState(s: unknown): s is ApprovalState {
  return typeof s === 'object' && s !== null && (s as { v?: unknown }).v === 1 && typeof (s as { cursors?: unknown }).cursors === 'object';
}

/**
 * Where a pass starts for one approval code: backfillDays back for a full pass or a code never
 * synced, otherwise lookbackDays before the cursor (instances change status after creation, and the
 * list may show a new instance late), never further back than backfillDays.
 */
function windowFrom(config: ApprovalConfigType, mode: SyncMode, cursor: number | undefined, until: number): number {
  const floor = until - config.backfillDays * DAY;
  if (mode === 'full' || cursor === undefined) return floor;
  return Math.min(until, Math.max(floor, cursor - config.lookbackDays * DAY));
}

/** SyncLarkClient's message for a refused call names the Lark code; the error carries it nowhere else. */
function hasLarkCode(err: unknown, code: number): boolean {
  return err instanceof SyncError && err.larkCode === code;
}

/**
 * A resumed pass follows config edits made since it stopped: codes no longer configured are
 * skipped (a deleted approval code would otherwise fail every resumed run), new ones are appended.
 */
export function reconcilePass(pass: Pass, config: ApprovalConfigType, cursors: Record<string, number>): Pass {
  const configured = config.approvalCodes;
  const finished = pass.codes.slice(0, pass.codeIndex).filter((c) => configured.includes(c));
  const current = pass.codes[pass.codeIndex];
  const rest = configured.filter((c) => !finished.includes(c) && c !== current);
  if (current !== undefined && configured.includes(current)) {
    return { ...pass, codes: [...finished, current, ...rest], codeIndex: finished.length };
  }
  const next = rest[0];
  return {
    ...pass,
    codes: [...finished, ...rest],
    codeIndex: finished.length,
    windowStart: next === undefined ? pass.until : windowFrom(config, pass.mode, cursors[next], pass.until),
    pageToken: null,
    pending: [],
  };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next;
      next += 1;
      try {
        out[i] = await fn(items[i] as T);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function fetchDetail(ctx: SyncContext<ApprovalConfigType>, instanceCode: string): Promise<LarkInstance | undefined> {
  try {
    return await ctx.lark.call<LarkInstance>('approval.instances.get', {
      method: 'GET',
      path: `/open-apis/approval/v4/instances/${encodeURIComponent(instanceCode)}`,
      endpoint: '/open-apis/approval/v4/instances/:instance_id',
      // open_id works for both app kinds; user_id comes back filled only where the app holds the
      // custom-app-only field scope (approval.md §0), whatever user_id_type says.
      query: { user_id_type: 'open_id' },
    });
  } catch (err) {
    // Deleted between the list call and this one: gone, not a reason to stop the run.
    if (hasLarkCode(err, INSTANCE_NOT_FOUND)) return undefined;
    throw err;
  }
}

/** Rows and child replacements for one batch of details. */
async function readDetails(ctx: SyncContext<ApprovalConfigType>, approvalCode: string, codes: string[]) {
  const details = await mapLimit(codes, DETAIL_CONCURRENCY, (code) => fetchDetail(ctx, code));
  const rows: Record<'approval_instances' | 'approval_instance_fields' | 'approval_tasks' | 'approval_timeline', StreamRow[]> = {
    approval_instances: [],
    approval_instance_fields: [],
    approval_tasks: [],
    approval_timeline: [],
  };
  const replace: ChildScope[] = [];
  codes.forEach((code, i) => {
    const detail = details[i];
    if (!detail) {
      // The instance row and its children are soft-deleted: an empty key list keeps none.
      for (const stream of ['approval_instances', ...CHILD_STREAMS] as StreamName[]) {
        replace.push({ stream, column: 'instance_code', value: code, keys: [] });
      }
      return;
    }
    const r = instanceRows(detail, code, approvalCode);
    rows.approval_instances.push(r.instance);
    rows.approval_tasks.push(...r.tasks);
    rows.approval_timeline.push(...r.timeline);
    replace.push({ stream: 'approval_tasks', column: 'instance_code', value: code, keys: r.tasks.map((x) => x.recordKey) });
    replace.push({ stream: 'approval_timeline', column: 'instance_code', value: code, keys: r.timeline.map((x) => x.recordKey) });
    // An unreadable form leaves the stored fields alone rather than deleting them all.
    if (r.fields) {
      rows.approval_instance_fields.push(...r.fields);
      replace.push({ stream: 'approval_instance_fields', column: 'instance_code', value: code, keys: r.fields.map((x) => x.recordKey) });
    }
  });
  return { rows, replace };
}

/**
 * Lists instance codes per approval code over creation-time windows of at most 10 h, then reads
 * each instance's detail. A list page is one step (its codes go into the checkpoint) and its
 * details follow in batches, so a run that stops anywhere resumes without listing again.
 */
export const instancesPhase = definePhase<ApprovalState, ApprovalConfigType>({
  name: 'approval_instances',
  stateSchema: Type.Object({
    v: Type.Literal(1),
    cursors: Type.Record(Type.String(), Type.Number()),
    pass: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  }),
  init(ctx, previous) {
    const prev = isState(previous) ? previous : undefined;
    // An explicit full run starts over; anything else finishes what a failed run left.
    if (prev?.pass && (ctx.mode === 'incremental' || prev.pass.mode === 'full')) {
      return { ...prev, pass: reconcilePass(prev.pass, ctx.config, prev.cursors) };
    }
    const codes = [...ctx.config.approvalCodes];
    // Cursors of codes no longer configured are dropped, so the state stays small.
    const cursors: Record<string, number> = {};
    for (const c of codes) if (prev?.cursors[c] !== undefined) cursors[c] = prev.cursors[c];
    const until = Date.now();
    const first = codes[0] ?? '';
    return {
      v: 1,
      cursors,
      pass: { mode: ctx.mode, codes, until, codeIndex: 0, windowStart: windowFrom(ctx.config, ctx.mode, cursors[first], until), pageToken: null, pending: [] },
    };
  },

  async readPage(ctx, state) {
    let pass: Pass | null = state.pass;
    if (!pass) return { rows: {}, state, done: true };

    if (pass.pending.length > 0) {
      const approvalCode = pass.codes[pass.codeIndex] ?? '';
      const batch = pass.pending.slice(0, DETAIL_BATCH);
      try {
        const { rows, replace } = await readDetails(ctx, approvalCode, batch);
        return { rows, replaceChildren: replace, state: { ...state, pass: { ...pass, pending: pass.pending.slice(batch.length) } }, done: false };
      } catch (err) {
        if (!isItemFailure(err)) throw err;
        return skipCode(ctx, state.cursors, pass, approvalCode, err);
      }
    }

    let cursors = state.cursors;
    while (pass.codeIndex < pass.codes.length && pass.windowStart >= pass.until) {
      const finished = pass.codes[pass.codeIndex] ?? '';
      if (pass.incomplete) {
        ctx.log.warn({ runId: ctx.runId, approvalCode: finished }, 'approval listing stopped early (has_more without page_token): cursor kept');
      } else {
        cursors = { ...cursors, [finished]: pass.until };
      }
      pass = nextCode(ctx, { ...pass, codesOk: (pass.codesOk ?? 0) + 1 }, cursors);
    }
    if (pass.codeIndex >= pass.codes.length) return { rows: {}, state: { v: 1, cursors, pass: null }, done: true };

    const approvalCode = pass.codes[pass.codeIndex] ?? '';
    const windowEnd = Math.min(pass.windowStart + MAX_WINDOW_MS, pass.until);
    try {
      return await listPage(ctx, cursors, pass, approvalCode, windowEnd);
    } catch (err) {
      if (!isItemFailure(err)) throw err;
      return skipCode(ctx, cursors, pass, approvalCode, err);
    }
  },
});

/** The pass moved on to the next code (its window starts where that code's cursor says). */
function nextCode(ctx: SyncContext<ApprovalConfigType>, pass: Pass, cursors: Record<string, number>): Pass {
  const codeIndex = pass.codeIndex + 1;
  const code = pass.codes[codeIndex];
  const windowStart = code === undefined ? pass.until : windowFrom(ctx.config, pass.mode, cursors[code], pass.until);
  return { ...pass, codeIndex, windowStart, pageToken: null, pending: [], incomplete: false };
}

/**
 * An approval code Lark refuses (unknown, no permission, failing) is recorded on the run, its
 * cursor stays, and the other codes go on; the run ends `partial`. When no code of the pass could
 * be read, the run fails instead.
 */
function skipCode(ctx: SyncContext<ApprovalConfigType>, cursors: Record<string, number>, pass: Pass, approvalCode: string, err: SyncError) {
  const next = nextCode(ctx, pass, cursors);
  if (next.codeIndex >= next.codes.length && (pass.codesOk ?? 0) === 0) throw err;
  const hint =
    err.errorClass === 'permission_denied'
      ? 'give the app the approval scopes and make it visible to this approval definition, or remove the code'
      : err.errorClass === 'invalid_config' || err.errorClass === 'not_found'
        ? 'fix or remove this code in approvalCodes'
        : 'Lark kept failing on this code; the next run tries it again';
  const itemError: ItemError = { item: 'approval_code', id: approvalCode, errorClass: err.errorClass, message: `${err.message}; ${hint}` };
  ctx.log.warn({ runId: ctx.runId, approvalCode, errorClass: err.errorClass }, 'approval code failed: recorded on the run, the other codes go on');
  return { rows: {}, state: { v: 1 as const, cursors, pass: next }, done: false, itemErrors: [itemError] };
}

async function listPage(
  ctx: SyncContext<ApprovalConfigType>,
  cursors: Record<string, number>,
  pass: Pass,
  approvalCode: string,
  windowEnd: number,
) {
  const data = await ctx.lark
    .call<LarkInstanceList>('approval.instances.list', {
      method: 'GET',
      path: '/open-apis/approval/v4/instances',
      query: {
        approval_code: approvalCode,
        start_time: String(pass.windowStart),
        end_time: String(windowEnd),
        page_size: LIST_PAGE_SIZE,
        page_token: pass.pageToken ?? undefined,
      },
    })
    .catch((err: unknown) => {
      // Lark's message does not say which of the configured codes it means.
      if (hasLarkCode(err, APPROVAL_CODE_NOT_FOUND)) {
        throw new SyncError(
          'invalid_config',
          `approval code "${approvalCode}" does not exist in this tenant (Lark code ${APPROVAL_CODE_NOT_FOUND}); remove it from approvalCodes`,
        );
      }
      throw err;
    });
  const listed = [...new Set(data.instance_code_list ?? [])];
  const next: Pass =
    data.has_more && data.page_token
      ? { ...pass, pageToken: data.page_token, pending: listed }
      : { ...pass, windowStart: windowEnd, pageToken: null, pending: listed, incomplete: pass.incomplete || data.has_more === true };
  return { rows: {}, state: { v: 1 as const, cursors, pass: next }, done: false };
}
