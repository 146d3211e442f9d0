import { definePhase } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import { ROOT_DEPARTMENT, type ContactConfigType } from './config.js';
import type { LarkDepartment, LarkPage } from './lark-types.js';

interface State {
  v: 1;
  roots: string[];
  rootIndex: number;
  pageToken: string | null;
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

/** Walks every configured root with fetch_child=true (all descendants), 50 per page (the maximum). */
export const departmentsPhase = definePhase<State, ContactConfigType>({
  name: 'contact_departments',
  tracksDeletions: ['contact_departments'],
  init: (ctx) => ({ v: 1, roots: ctx.config.departmentIds ?? [ROOT_DEPARTMENT], rootIndex: 0, pageToken: null }),
  async readPage(ctx, state) {
    const root = state.roots[state.rootIndex];
    if (root === undefined) return { rows: {}, state, done: true, sweep: [{ stream: 'contact_departments', partition: '' }] };
    const data = await ctx.lark.call<LarkPage<LarkDepartment>>('contact.departments.children', {
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
    const rows = (data.items ?? []).map(departmentRow).filter((r): r is StreamRow => r !== undefined);
    const next: State = data.has_more && data.page_token
      ? { ...state, pageToken: data.page_token }
      : { ...state, rootIndex: state.rootIndex + 1, pageToken: null };
    const done = next.rootIndex >= state.roots.length;
    return {
      rows: { contact_departments: rows },
      state: next,
      done,
      sweep: done ? [{ stream: 'contact_departments', partition: '' }] : undefined,
    };
  },
});
