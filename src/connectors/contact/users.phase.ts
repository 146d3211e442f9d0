import { Type } from '@sinclair/typebox';
import { isItemFailure } from '../../sync/sync-errors.js';
import { definePhase, type SyncContext } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import { ROOT_DEPARTMENT, type ContactConfigType } from './config.js';
import type { LarkPage, LarkUser } from './lark-types.js';
import { departmentError, pageEnd } from './listing.js';

/**
 * Users are listed per department (find_by_department lists direct members only), over the
 * configured roots (the root "0" holds users directly under it) and then every department the
 * departments phase stored, in key order so a resumed run continues where it stopped.
 */
interface State {
  v: 1;
  /** roots still to list, then departments after `afterKey` */
  rootIndex: number;
  afterKey: string | null;
  current: string | null;
  pageToken: string | null;
  /** false once a department failed or a listing stopped early: no deletions are judged (absent in older states) */
  complete?: boolean;
  /** departments listed without failing */
  listedOk?: number;
}

export function userRow(u: LarkUser): StreamRow | undefined {
  if (!u.open_id) return undefined;
  return {
    recordKey: u.open_id,
    raw: u,
    columns: {
      open_id: u.open_id,
      union_id: u.union_id ?? null,
      user_id: u.user_id ?? null,
      name: u.name ?? null,
      department_ids: u.department_ids ?? [],
      is_frozen: u.status?.is_frozen ?? null,
      is_resigned: u.status?.is_resigned ?? null,
      is_activated: u.status?.is_activated ?? null,
      is_exited: u.status?.is_exited ?? null,
      is_unjoin: u.status?.is_unjoin ?? null,
    },
  };
}

async function nextDepartment(ctx: SyncContext<ContactConfigType>, state: State): Promise<State | undefined> {
  const roots = ctx.config.departmentIds ?? [ROOT_DEPARTMENT];
  if (state.rootIndex < roots.length) {
    return { ...state, current: roots[state.rootIndex] ?? null, rootIndex: state.rootIndex + 1, pageToken: null };
  }
  const idColumn = ctx.config.departmentIdType === 'department_id' ? 'department_id' : 'open_department_id';
  const [dept] = await ctx.read.keysAfter('contact_departments', state.afterKey, idColumn, 1);
  if (!dept) return undefined;
  return { ...state, afterKey: dept.key, current: dept.value ?? dept.key, pageToken: null };
}

export const usersPhase = definePhase<State, ContactConfigType>({
  name: 'contact_users',
  stateSchema: Type.Object({
    v: Type.Literal(1),
    rootIndex: Type.Integer({ minimum: 0 }),
    afterKey: Type.Union([Type.String(), Type.Null()]),
    current: Type.Union([Type.String(), Type.Null()]),
    pageToken: Type.Union([Type.String(), Type.Null()]),
    complete: Type.Optional(Type.Boolean()),
    listedOk: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
  tracksDeletions: ['contact_users'],
  init: () => ({ v: 1, rootIndex: 0, afterKey: null, current: null, pageToken: null, complete: true, listedOk: 0 }),
  async readPage(ctx, state) {
    let at: State | undefined = state.current ? state : await nextDepartment(ctx, state);
    if (!at || !at.current) {
      // Users missed by two complete listings in a row are gone (no read-back by id is certain).
      const sweep = state.complete !== false ? [{ stream: 'contact_users' as const, partition: '', confirmBy: 'relist' as const }] : undefined;
      return { rows: {}, state, done: true, sweep };
    }
    let data: LarkPage<LarkUser>;
    try {
      data = await ctx.lark.call<LarkPage<LarkUser>>('contact.users.find_by_department', {
        method: 'GET',
        path: '/open-apis/contact/v3/users/find_by_department',
        query: {
          department_id: at.current,
          department_id_type: ctx.config.departmentIdType,
          user_id_type: ctx.config.userIdType,
          page_size: 50,
          page_token: at.pageToken ?? undefined,
        },
      });
    } catch (err) {
      if (!isItemFailure(err)) throw err;
      const after: State = { ...at, current: null, pageToken: null, complete: false };
      // The department is recorded and skipped; if it was the last and none could be listed, the run fails.
      if ((state.listedOk ?? 0) === 0 && !(await nextDepartment(ctx, after))) throw err;
      return { rows: {}, state: after, done: false, itemErrors: [departmentError(at.current, err, `listing the users of department ${at.current}`)] };
    }
    const rows = (data.items ?? []).map(userRow).filter((r): r is StreamRow => r !== undefined);
    const end = pageEnd(data);
    if (!end.more && !end.complete) {
      ctx.log.warn({ runId: ctx.runId, department: at.current }, 'contact users listing stopped early (has_more without page_token): no deletions judged');
    }
    at = end.more
      ? { ...at, pageToken: end.pageToken }
      : { ...at, current: null, pageToken: null, complete: (at.complete ?? true) && end.complete, listedOk: (at.listedOk ?? 0) + 1 };
    return { rows: { contact_users: rows }, state: at, done: false };
  },
});
