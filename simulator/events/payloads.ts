import { createHash } from 'node:crypto';
import type { SimCc, SimInstance, SimTask, ApprovalEventStatus, TaskEventStatus } from '../data/approval.js';
import type { ContactDirectory, SimDepartment, SimUser } from '../data/contact.js';
import { FieldType, type FieldChange, type RecordChange, type SimBitableField, type SimBitablePerson, type SimTable } from '../data/bitable/table.js';

/**
 * The `event` objects of the change events (../shared/lark/change-events.md), built from the
 * simulator's data. Pure functions: who receives them is decided in feed.ts. Where the notes are
 * silent the choice is marked "(unconfirmed)".
 */

/** `{union_id, user_id, open_id}` of a person; user_id only for custom apps (its scope is custom-only). */
export interface UserIds {
  union_id: string;
  user_id?: string;
  open_id: string;
}

export const NO_USER: UserIds = { union_id: '', open_id: '' };

/** The ids of a contact user; an unknown open_id keeps its open_id (an app or a person gone). */
export function idsOf(dir: ContactDirectory, openId: string, custom: boolean): UserIds {
  if (!openId.startsWith('ou_')) return custom ? { ...NO_USER, user_id: '' } : NO_USER;
  const u = dir.users.get(openId);
  const ids: UserIds = { union_id: u?.union_id ?? '', open_id: openId };
  if (custom) ids.user_id = u?.user_id ?? '';
  return ids;
}

// ---------------------------------------------------------------- contact (§1)

/**
 * A user as an app sees it in events: as the read API shows it (contact.ts): user_id, email and
 * mobile only for custom apps, employee_no only with its scope.
 */
export function userObject(u: Partial<SimUser>, custom: boolean, employeeNumberScope: boolean): Record<string, unknown> {
  const { user_id, employee_no, email, mobile, ...rest } = u;
  const out: Record<string, unknown> = { ...structuredClone(rest) };
  if (custom) {
    if (user_id !== undefined) out.user_id = user_id;
    if (email !== undefined) out.email = email;
    if (mobile !== undefined) out.mobile = mobile;
  }
  if (employeeNumberScope && employee_no !== undefined) out.employee_no = employee_no;
  return out;
}

/** A department as events show it: `order` is an int here (a string in the scope event and reads). */
export function departmentObject(d: Partial<SimDepartment>): Record<string, unknown> {
  const { member_count: _count, ...rest } = d;
  const out: Record<string, unknown> = { ...structuredClone(rest) };
  if (d.order !== undefined) out.order = Number(d.order);
  return out;
}

/** A department in `contact.scope.updated_v3`: the read shape (order a string, member_count). */
export function scopeDepartment(dir: ContactDirectory, openDepartmentId: string): Record<string, unknown> {
  const d = dir.departments.get(openDepartmentId);
  if (d) return { ...structuredClone(d), i18n_name: { zh_cn: d.name, ja_jp: '', en_us: d.name } };
  // "0", the whole tenant: no department object of its own (its shape here is unconfirmed).
  return { open_department_id: openDepartmentId, department_id: openDepartmentId, parent_department_id: '', name: '', order: '0', member_count: dir.users.size, status: { is_deleted: false } };
}

// ---------------------------------------------------------------- approval (§2.1)

/**
 * `approval_instance`: `operate_time` is a ms string, except for REVERTED, where Lark sends an
 * int64 (documented); `numberForm` makes it a number for other statuses too (seeded by the
 * caller, so receivers meet both forms).
 */
export function approvalInstanceEvent(
  appId: string,
  tenantKey: string,
  inst: SimInstance,
  status: ApprovalEventStatus,
  atMs: number,
  numberForm: boolean,
): Record<string, unknown> {
  return {
    app_id: appId,
    tenant_key: tenantKey,
    type: 'approval_instance',
    approval_code: inst.approval_code,
    instance_code: inst.instance_code,
    status,
    operate_time: status === 'REVERTED' || numberForm ? atMs : String(atMs),
    instance_operate_time: String(atMs),
    uuid: inst.uuid,
  };
}

/**
 * `approval_task` (change-events.md §2.1): the task and its status, the operator's `open_id` /
 * `user_id` (the approver; empty for an automatic pass), `operate_time` a ms string, `custom_key`
 * (the node's custom id) and `def_key` (its system id). user_id only for custom apps, as in the
 * detail (its scope is custom-only; unconfirmed for events). `extra` comes only with a rollback,
 * which the simulator does not make.
 */
export function approvalTaskEvent(
  appId: string,
  tenantKey: string,
  inst: SimInstance,
  task: SimTask,
  status: TaskEventStatus,
  atMs: number,
  custom: boolean,
): Record<string, unknown> {
  const auto = task.type === 'AUTO_PASS' || task.type === 'AUTO_REJECT';
  return {
    app_id: appId,
    tenant_key: tenantKey,
    type: 'approval_task',
    approval_code: inst.approval_code,
    instance_code: inst.instance_code,
    task_id: task.id,
    open_id: auto ? '' : task.open_id,
    user_id: auto || !custom ? '' : task.user_id,
    status,
    operate_time: String(atMs),
    custom_key: task.node_id,
    def_key: createHash('md5').update(`node:${task.node_id}`).digest('hex').slice(0, 12),
  };
}

/**
 * `approval_cc`: the cc's `id`, the recipient's `user_id` and who cc'd (`from`, a user_id; may be
 * empty), `operate` CREATE or READ, `create_time` a ms **number**. Only user ids are given, and a
 * store app lacks their scope: empty there (unconfirmed, as the notes say). For a READ,
 * `create_time` is the time of the read here (the notes do not say which time it is: unconfirmed).
 */
export function approvalCcEvent(
  appId: string,
  tenantKey: string,
  inst: SimInstance,
  cc: SimCc,
  operate: 'CREATE' | 'READ',
  atMs: number,
  custom: boolean,
): Record<string, unknown> {
  return {
    app_id: appId,
    tenant_key: tenantKey,
    type: 'approval_cc',
    approval_code: inst.approval_code,
    instance_code: inst.instance_code,
    id: cc.id,
    user_id: custom ? cc.user_id : '',
    create_time: atMs,
    operate,
    from: custom ? cc.from_user_id : '',
  };
}

// ---------------------------------------------------------------- Base (§3)

const PERSON_TYPES = new Set<number>([FieldType.User, FieldType.CreatedUser, FieldType.ModifiedUser]);
/**
 * Formula values are neither reported nor carried (documented); lookups are treated alike (the
 * notes' inference, unconfirmed).
 */
const UNREPORTED_TYPES = new Set<number>([FieldType.Formula, FieldType.Lookup]);

type Cell = { field_id: string; field_value: string; field_identity_value?: { users: unknown[] } };

function cellOf(field: SimBitableField, value: unknown, person: (p: SimBitablePerson) => UserIds): Cell {
  const cell: Cell = { field_id: field.field_id, field_value: JSON.stringify(value) };
  if (PERSON_TYPES.has(field.type) && Array.isArray(value)) {
    cell.field_identity_value = {
      users: (value as SimBitablePerson[]).map((p) => ({ user_id: person(p), name: p.name, en_name: p.en_name, avatar_url: '' })),
    };
  }
  return cell;
}

/**
 * One `action_list` entry per record. Edits list only the changed fields (as the documented
 * example); additions list every non-empty field after, deletions every field before (both
 * unconfirmed). An edit that changed only unreported fields is left out.
 */
export function recordActions(table: SimTable, changes: RecordChange[], person: (p: SimBitablePerson) => UserIds): Array<Record<string, unknown>> {
  const byName = new Map(table.fields.filter((f) => !UNREPORTED_TYPES.has(f.type)).map((f) => [f.field_name, f]));
  const cells = (fields: Record<string, unknown> | undefined, names: Iterable<string>) => {
    const out: Cell[] = [];
    for (const name of names) {
      const f = byName.get(name);
      if (f && fields && fields[name] !== undefined && fields[name] !== null) out.push(cellOf(f, fields[name], person));
    }
    return out;
  };
  const actions: Array<Record<string, unknown>> = [];
  for (const c of changes) {
    const before = c.before?.fields;
    const after = c.after?.fields;
    let names: string[];
    if (c.action === 'record_edited') {
      names = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])].filter(
        (n) => byName.has(n) && JSON.stringify(before?.[n]) !== JSON.stringify(after?.[n]),
      );
      if (names.length === 0) continue;
    } else {
      names = Object.keys((c.action === 'record_added' ? after : before) ?? {});
    }
    actions.push({
      record_id: c.record_id,
      action: c.action,
      before_value: c.action === 'record_added' ? [] : cells(before, names),
      after_value: c.action === 'record_deleted' ? [] : cells(after, names),
    });
  }
  return actions;
}

/** A field as `drive.file.bitable_field_changed_v1` shows it (`description` left out: unconfirmed shape). */
function fieldValue(f: SimBitableField): Record<string, unknown> {
  return { id: f.field_id, name: f.field_name, type: f.type, property: structuredClone(f.property ?? {}) };
}

/** `before_value` is absent for additions and `after_value` for deletions (unconfirmed). */
export function fieldActions(changes: FieldChange[]): Array<Record<string, unknown>> {
  return changes.map((c) => ({
    action: c.action,
    field_id: c.field_id,
    ...(c.before ? { before_value: fieldValue(c.before) } : {}),
    ...(c.after ? { after_value: fieldValue(c.after) } : {}),
  }));
}
