import { sql } from 'kysely';
import { definePhase, type SyncContext } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import { ROOT_DEPARTMENT, type ContactConfigType } from './config.js';
import type { LarkPage, LarkUser } from './lark-types.js';

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
  const row = await sql<{ record_key: string; id: string | null }>`
    select record_key, ${sql.ref(idColumn)} as id from contact_departments
     where tenant_key = ${ctx.tenantKey} and deleted_at is null and record_key > ${state.afterKey ?? ''}
     order by record_key limit 1`.execute(ctx.services.db);
  const dept = row.rows[0];
  if (!dept) return undefined;
  return { ...state, afterKey: dept.record_key, current: dept.id ?? dept.record_key, pageToken: null };
}

export const usersPhase = definePhase<State, ContactConfigType>({
  name: 'contact_users',
  tracksDeletions: ['contact_users'],
  init: () => ({ v: 1, rootIndex: 0, afterKey: null, current: null, pageToken: null }),
  async readPage(ctx, state) {
    let at: State | undefined = state.current ? state : await nextDepartment(ctx, state);
    if (!at || !at.current) {
      return { rows: {}, state, done: true, sweep: [{ stream: 'contact_users', partition: '' }] };
    }
    const data = await ctx.lark.call<LarkPage<LarkUser>>('contact.users.find_by_department', {
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
    const rows = (data.items ?? []).map(userRow).filter((r): r is StreamRow => r !== undefined);
    at = data.has_more && data.page_token ? { ...at, pageToken: data.page_token } : { ...at, current: null, pageToken: null };
    return { rows: { contact_users: rows }, state: at, done: false };
  },
});
