import { Type } from '@sinclair/typebox';
import { isItemFailure } from '../../sync/sync-errors.js';
import { definePhase } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import { ROOT_DEPARTMENT, type ContactConfigType } from './config.js';
import type { LarkDepartment, LarkPage } from './lark-types.js';
import { departmentError, pageEnd } from './listing.js';

interface State {
  v: 1;
  roots: string[];
  rootIndex: number;
  pageToken: string | null;
  /** false once a root failed or a listing stopped early: nothing is judged deleted then (absent in older states) */
  complete?: boolean;
  /** roots listed without failing */
  rootsOk?: number;
}

export function departmentRow(d: LarkDepartment): StreamRow | undefined {
  if (!d.open_department_id) return undefined;
  return {
    recordKey: d.open_department_id,
    raw: d,
    columns: {
      open_department_id: d.open_department_id,
      department_id: d.department_id ?? null,
      parent_department_id: d.parent_department_id ?? null,
      name: d.name ?? null,
      is_deleted: d.status?.is_deleted ?? false,
    },
  };
}

/**
 * Walks every configured root with fetch_child=true (all descendants), 50 per page (the maximum).
 * A root Lark refuses is recorded on the run and the other roots go on. Departments a complete
 * walk misses twice in a row are marked deleted (no API reads a department back for certain).
 */
export const departmentsPhase = definePhase<State, ContactConfigType>({
  name: 'contact_departments',
  stateSchema: Type.Object({
    v: Type.Literal(1),
    roots: Type.Array(Type.String()),
    rootIndex: Type.Integer({ minimum: 0 }),
    pageToken: Type.Union([Type.String(), Type.Null()]),
    complete: Type.Optional(Type.Boolean()),
    rootsOk: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
  tracksDeletions: ['contact_departments'],
  init: (ctx) => ({ v: 1, roots: ctx.config.departmentIds ?? [ROOT_DEPARTMENT], rootIndex: 0, pageToken: null, complete: true, rootsOk: 0 }),
  async readPage(ctx, state) {
    const root = state.roots[state.rootIndex];
    if (root === undefined) return { rows: {}, state, done: true };
    let data: LarkPage<LarkDepartment>;
    try {
      data = await ctx.lark.call<LarkPage<LarkDepartment>>('contact.departments.children', {
        method: 'GET',
        path: `/open-apis/contact/v3/departments/${encodeURIComponent(root)}/children`,
        endpoint: '/open-apis/contact/v3/departments/:id/children',
        query: {
          fetch_child: true,
          page_size: 50,
          page_token: state.pageToken ?? undefined,
          department_id_type: ctx.config.departmentIdType,
          user_id_type: ctx.config.userIdType,
        },
      });
    } catch (err) {
      if (!isItemFailure(err)) throw err;
      const next: State = { ...state, rootIndex: state.rootIndex + 1, pageToken: null, complete: false };
      // Not one root could be listed: the run fails rather than "succeeding" with nothing.
      if (next.rootIndex >= state.roots.length && (state.rootsOk ?? 0) === 0) throw err;
      return {
        rows: {},
        state: next,
        done: next.rootIndex >= state.roots.length,
        itemErrors: [departmentError(root, err, `listing the departments under ${root}`)],
      };
    }
    const rows = (data.items ?? []).map(departmentRow).filter((r): r is StreamRow => r !== undefined);
    const end = pageEnd(data);
    if (!end.more && !end.complete) {
      ctx.log.warn({ runId: ctx.runId, root }, 'contact departments listing stopped early (has_more without page_token): no deletions judged');
    }
    const next: State = end.more
      ? { ...state, pageToken: end.pageToken }
      : { ...state, rootIndex: state.rootIndex + 1, pageToken: null, complete: (state.complete ?? true) && end.complete, rootsOk: (state.rootsOk ?? 0) + 1 };
    const done = next.rootIndex >= state.roots.length;
    return {
      rows: { contact_departments: rows },
      state: next,
      done,
      sweep: done && next.complete !== false ? [{ stream: 'contact_departments', partition: '', confirmBy: 'relist' }] : undefined,
    };
  },
});
