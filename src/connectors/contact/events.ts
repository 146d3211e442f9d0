import { sql } from 'kysely';
import { SyncError } from '../../sync/sync-errors.js';
import type { ModuleEventContext, ModuleEventHandler } from '../../sync/sync-module.js';
import type { ContactConfigType } from './config.js';
import { departmentRow } from './departments.phase.js';
import type { LarkDepartment, LarkUser } from './lark-types.js';
import { userRow } from './users.phase.js';

type Ctx = ModuleEventContext<ContactConfigType>;

/**
 * Lark codes that mean the user or department cannot be read any more: 41050 (no user authority:
 * gone, or outside the app's contact scope) and 40003/40004 (no department authority). Which code
 * the single reads answer for an object that is gone is not in the notes (unconfirmed): any of
 * these counts as confirmed gone, since a row the app can no longer see is gone for its readers
 * too (a full pass would mark it deleted as well, after two listings).
 */
const GONE_CODES = new Set([41050, 40003, 40004, 40013]);

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
const ids = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : []);

function gone(err: unknown): boolean {
  return err instanceof SyncError && err.larkCode !== undefined && GONE_CODES.has(err.larkCode);
}

/**
 * Whether departments (open_department_ids) lie within the configured roots: a root itself or a
 * department the contact sync stored below one. No `departmentIds`: the whole directory is. (With
 * `departmentIdType: department_id` a root is known by its custom id only, so a user directly in
 * such a root is matched only once the sync has stored the root's descendants: tolerant.)
 */
async function withinConfig(ctx: Ctx, departments: string[]): Promise<boolean> {
  const roots = ctx.config.departmentIds;
  if (!roots) return true;
  if (departments.some((d) => roots.includes(d))) return true;
  if (departments.length === 0) return false;
  const res = await sql<{ hit: boolean }>`
    select exists (select 1 from contact_departments
                    where tenant_key = ${ctx.tenantKey} and deleted_at is null
                      and (open_department_id = any(${departments}::text[]) or department_id = any(${departments}::text[]))) as hit`.execute(ctx.db);
  return res.rows[0]?.hit === true;
}

/** The user as Lark has it now, or undefined when Lark says it is gone. One call. */
async function readUser(ctx: Ctx, event: Record<string, unknown>, openId: string): Promise<LarkUser | undefined> {
  const o = obj(event.object);
  const type = ctx.config.userIdType;
  // Read with the id type the sync lists with, so the row hashes the same as a listed one.
  const id = type === 'union_id' ? str(o.union_id) : type === 'user_id' ? str(o.user_id) : openId;
  try {
    const data = await ctx.lark.call<{ user?: LarkUser }>('contact.users.get', {
      method: 'GET',
      path: `/open-apis/contact/v3/users/${encodeURIComponent(id ?? openId)}`,
      endpoint: '/open-apis/contact/v3/users/:user_id',
      query: { user_id_type: id ? type : 'open_id', department_id_type: ctx.config.departmentIdType },
    });
    return data.user?.open_id ? data.user : undefined;
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  }
}

async function readDepartment(ctx: Ctx, event: Record<string, unknown>, openDepartmentId: string): Promise<LarkDepartment | undefined> {
  const o = obj(event.object);
  const type = ctx.config.departmentIdType;
  const id = type === 'department_id' ? str(o.department_id) : openDepartmentId;
  try {
    const data = await ctx.lark.call<{ department?: LarkDepartment }>('contact.departments.get', {
      method: 'GET',
      path: `/open-apis/contact/v3/departments/${encodeURIComponent(id ?? openDepartmentId)}`,
      endpoint: '/open-apis/contact/v3/departments/:department_id',
      query: { department_id_type: id ? type : 'open_department_id', user_id_type: ctx.config.userIdType },
    });
    const d = data.department;
    return d?.open_department_id && !d.status?.is_deleted ? d : undefined;
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  }
}

/**
 * `contact.user.created_v3` / `updated_v3` / `deleted_v3`: the user is read again (the event's
 * `object` is what the sender saw, and `old_object` holds only changed fields): at most one call.
 * A user Lark no longer shows is marked deleted; one that moved out of the configured departments
 * likewise. An event older (by Lark's push time) than one already applied to the user is a no-op.
 */
export const onUserEvent: ModuleEventHandler<ContactConfigType> = async (event, ctx) => {
  const o = obj(event.object);
  const old = obj(event.old_object);
  const openId = str(o.open_id) ?? str(old.open_id);
  if (!openId) return 'ignored';
  const mark = { keys: [`contact_users:${openId}`], mark: ctx.pushedAt.getTime() };
  const { fresh, readSeq } = await ctx.freshRead(mark.keys, mark.mark);
  if (fresh.length === 0) return 'ignored';
  if (!(await withinConfig(ctx, [...ids(o.department_ids), ...ids(old.department_ids)]))) return 'ignored';
  const user = await readUser(ctx, event, openId);
  const row = user && (await withinConfig(ctx, ids(user.department_ids))) ? userRow(user) : undefined;
  await ctx.apply(row ? { readSeq, rows: { contact_users: [row] }, marks: mark } : { readSeq, deleted: [{ stream: 'contact_users', keys: [openId] }], marks: mark });
  return 'processed';
};

/** `contact.department.*_v3`: the department read again, or marked deleted once Lark shows it deleted or gone. */
export const onDepartmentEvent: ModuleEventHandler<ContactConfigType> = async (event, ctx) => {
  const o = obj(event.object);
  const old = obj(event.old_object);
  const id = str(o.open_department_id) ?? str(old.open_department_id);
  if (!id) return 'ignored';
  const mark = { keys: [`contact_departments:${id}`], mark: ctx.pushedAt.getTime() };
  const { fresh, readSeq } = await ctx.freshRead(mark.keys, mark.mark);
  if (fresh.length === 0) return 'ignored';
  const parents = [str(o.parent_department_id), str(old.parent_department_id)].filter((p): p is string => p !== undefined);
  if (!(await withinConfig(ctx, [id, ...parents]))) return 'ignored';
  const dept = await readDepartment(ctx, event, id);
  const row = dept ? departmentRow(dept) : undefined;
  await ctx.apply(row ? { readSeq, rows: { contact_departments: [row] }, marks: mark } : { readSeq, deleted: [{ stream: 'contact_departments', keys: [id] }], marks: mark });
  return 'processed';
};

/**
 * `contact.scope.updated_v3`: which users and departments the app may see changed. Whether
 * `added` lists every descendant is not stated (unconfirmed), so the directory is walked again: a
 * contact pass (a run already queued or running is kept).
 */
export const onScopeUpdated: ModuleEventHandler<ContactConfigType> = async (_event, ctx) => {
  await ctx.triggerSync('full');
  return 'processed';
};

export const CONTACT_EVENTS = {
  'contact.user.created_v3': onUserEvent,
  'contact.user.updated_v3': onUserEvent,
  'contact.user.deleted_v3': onUserEvent,
  'contact.department.created_v3': onDepartmentEvent,
  'contact.department.updated_v3': onDepartmentEvent,
  'contact.department.deleted_v3': onDepartmentEvent,
  'contact.scope.updated_v3': onScopeUpdated,
};
