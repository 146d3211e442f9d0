import type { FastifyInstance } from 'fastify';
import { admit, decodePageToken, larkReply, ok, paginate, seededRandom, servePage, type DataApiContext } from './support.js';

export interface SimDepartment {
  open_department_id: string;
  department_id: string;
  parent_department_id: string;
  name: string;
  order: string;
  member_count: number;
  status: { is_deleted: boolean };
}

export interface SimUser {
  open_id: string;
  union_id: string;
  user_id: string;
  employee_no: string;
  name: string;
  en_name: string;
  department_ids: string[];
  status: { is_frozen: boolean; is_resigned: boolean; is_activated: boolean; is_exited: boolean; is_unjoin: boolean };
  job_title: string;
  join_time: number;
  /** Set only by tests (updateUser); store apps never see them (custom-app-only scopes, contact.md). */
  email?: string;
  mobile?: string;
}

/** A change of the directory, as the change events report it (events/contact.ts). */
export type ContactChange =
  | { kind: 'user.created'; user: SimUser }
  /** `old`: the changed fields only, before the change. */
  | { kind: 'user.updated'; user: SimUser; old: Partial<SimUser> }
  | { kind: 'user.deleted'; user: SimUser }
  | { kind: 'department.created'; department: SimDepartment }
  | { kind: 'department.updated'; department: SimDepartment; old: Partial<SimDepartment> }
  | { kind: 'department.deleted'; department: SimDepartment }
  | { kind: 'scope.updated'; appId: string; added: ContactScopeEntries; removed: ContactScopeEntries };

/** Explicit entries of an app's contact scope: department open ids ("0" = the whole tenant) and user open ids. */
export interface ContactScopeEntries {
  departments: string[];
  users: string[];
}

export type UserPatch = Partial<Omit<SimUser, 'open_id'>>;
export type DepartmentPatch = Partial<Omit<SimDepartment, 'open_department_id'>>;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export interface ContactShape {
  /** first-level departments */
  topLevel: number;
  /** children per department below the top level */
  childrenPerDepartment: number;
  depth: number;
  usersPerDepartment: number;
  /** users directly under the root department "0" */
  rootUsers: number;
}

export const defaultContactShape: ContactShape = { topLevel: 3, childrenPerDepartment: 2, depth: 2, usersPerDepartment: 3, rootUsers: 2 };

/** One tenant's directory: a department tree with users, generated deterministically. */
export class ContactDirectory {
  readonly departments = new Map<string, SimDepartment>();
  readonly users = new Map<string, SimUser>();
  /** The tenant (set by generate; ids of added users and departments carry it). */
  tenantKey = '';
  /** Told of every change made through the edit methods below (SimData turns them into events). */
  onChange: ((change: ContactChange) => void) | undefined = undefined;
  /** Contact scope per app: explicit departments and users. Absent = the whole tenant. */
  private readonly scopes = new Map<string, { departments: Set<string>; users: Set<string> }>();
  private userSeq = 0;
  private deptSeq = 0;
  /**
   * Whether this tenant's app holds contact:user.employee_number:read; user objects then carry
   * `employee_no` (contact.md §4). Off by default, as no connector asked for it before attendance.
   */
  employeeNumberScope = false;

  static generate(tenantKey: string, shape: ContactShape = defaultContactShape): ContactDirectory {
    const dir = new ContactDirectory();
    dir.tenantKey = tenantKey;
    const rnd = seededRandom(`contact:${tenantKey}`);
    let d = 0;
    let u = 0;
    const addUsers = (deptOpenId: string, n: number) => {
      for (let i = 0; i < n; i += 1) {
        u += 1;
        const id = `${tenantKey}-${u}`;
        dir.users.set(`ou_${id}`, {
          open_id: `ou_${id}`,
          union_id: `on_${id}`,
          user_id: `uid${u}`,
          employee_no: `E${String(u).padStart(5, '0')}`,
          name: `User ${u}`,
          en_name: `User ${u}`,
          department_ids: [deptOpenId],
          status: { is_frozen: false, is_resigned: rnd() < 0.05, is_activated: true, is_exited: false, is_unjoin: false },
          job_title: ['Engineer', 'Designer', 'Manager', 'Analyst'][Math.floor(rnd() * 4)] ?? 'Engineer',
          join_time: 1_600_000_000 + Math.floor(rnd() * 100_000_000),
        });
      }
    };
    const addDept = (parent: string, level: number) => {
      d += 1;
      const open = `od-${tenantKey}-${d}`;
      dir.departments.set(open, {
        open_department_id: open,
        department_id: `D${d}`,
        parent_department_id: parent,
        name: `Department ${d}`,
        order: String(d),
        member_count: shape.usersPerDepartment,
        status: { is_deleted: false },
      });
      addUsers(open, shape.usersPerDepartment);
      if (level < shape.depth) for (let i = 0; i < shape.childrenPerDepartment; i += 1) addDept(open, level + 1);
    };
    addUsers('0', shape.rootUsers);
    for (let i = 0; i < shape.topLevel; i += 1) addDept('0', 1);
    // One person in two departments: listed under both, stored once.
    const [first, second] = [...dir.departments.keys()];
    const shared = [...dir.users.values()].find((x) => x.department_ids[0] === first);
    if (shared && second) shared.department_ids.push(second);
    dir.userSeq = u;
    dir.deptSeq = d;
    return dir;
  }

  // ---------------------------------------------------------------- edits (each emits its change)

  user(openId: string): SimUser {
    const u = this.users.get(openId);
    if (!u) throw new Error(`simulator: no contact user ${openId} in ${this.tenantKey}`);
    return u;
  }

  department(openDepartmentId: string): SimDepartment {
    const d = this.departments.get(openDepartmentId);
    if (!d) throw new Error(`simulator: no department ${openDepartmentId} in ${this.tenantKey}`);
    return d;
  }

  /** A new member (`contact.user.created_v3`): generated ids, the given fields over defaults. */
  addUser(fields: UserPatch = {}): SimUser {
    this.userSeq += 1;
    const id = `${this.tenantKey}-${this.userSeq}`;
    const user: SimUser = {
      open_id: `ou_${id}`,
      union_id: `on_${id}`,
      user_id: `uid${this.userSeq}`,
      employee_no: `E${String(this.userSeq).padStart(5, '0')}`,
      name: `User ${this.userSeq}`,
      en_name: `User ${this.userSeq}`,
      department_ids: ['0'],
      status: { is_frozen: false, is_resigned: false, is_activated: true, is_exited: false, is_unjoin: false },
      job_title: 'Engineer',
      join_time: Math.floor(Date.now() / 1000),
      ...structuredClone(fields),
    };
    this.users.set(user.open_id, user);
    this.onChange?.({ kind: 'user.created', user: structuredClone(user) });
    return user;
  }

  /**
   * Changes a member (`contact.user.updated_v3`, `old_object` = the changed fields before). A
   * change of email or of mobile comes as its own event, as Lark sends it (change-events.md §1.1):
   * the other fields first, then email, then mobile. Nothing changed = no event.
   */
  updateUser(openId: string, patch: UserPatch): SimUser {
    const user = this.user(openId);
    const { email, mobile, ...rest } = patch;
    const steps: UserPatch[] = [rest, ...(email !== undefined ? [{ email }] : []), ...(mobile !== undefined ? [{ mobile }] : [])];
    for (const step of steps) {
      const old: Partial<SimUser> = {};
      for (const [k, v] of Object.entries(step) as Array<[keyof SimUser, unknown]>) {
        if (v === undefined || same(user[k], v)) continue;
        (old as Record<string, unknown>)[k] = structuredClone(user[k]);
        (user as unknown as Record<string, unknown>)[k] = structuredClone(v);
      }
      if (Object.keys(old).length > 0) this.onChange?.({ kind: 'user.updated', user: structuredClone(user), old });
    }
    return user;
  }

  /** A member leaves (`contact.user.deleted_v3`): gone from the directory. */
  deleteUser(openId: string): SimUser {
    const user = this.user(openId);
    this.onChange?.({ kind: 'user.deleted', user: structuredClone(user) });
    this.users.delete(openId);
    return user;
  }

  /** A new department (`contact.department.created_v3`) under `parent_department_id` (default "0"). */
  addDepartment(fields: DepartmentPatch = {}): SimDepartment {
    this.deptSeq += 1;
    const open = `od-${this.tenantKey}-${this.deptSeq}`;
    const dept: SimDepartment = {
      open_department_id: open,
      department_id: `D${this.deptSeq}`,
      parent_department_id: '0',
      name: `Department ${this.deptSeq}`,
      order: String(this.deptSeq),
      member_count: 0,
      status: { is_deleted: false },
      ...structuredClone(fields),
    };
    this.departments.set(open, dept);
    this.onChange?.({ kind: 'department.created', department: structuredClone(dept) });
    return dept;
  }

  /** Changes a department (`contact.department.updated_v3`); nothing changed = no event. */
  updateDepartment(openDepartmentId: string, patch: DepartmentPatch): SimDepartment {
    const dept = this.department(openDepartmentId);
    const old: Partial<SimDepartment> = {};
    for (const [k, v] of Object.entries(patch) as Array<[keyof SimDepartment, unknown]>) {
      if (v === undefined || same(dept[k], v)) continue;
      (old as Record<string, unknown>)[k] = structuredClone(dept[k]);
      (dept as unknown as Record<string, unknown>)[k] = structuredClone(v);
    }
    if (Object.keys(old).length > 0) this.onChange?.({ kind: 'department.updated', department: structuredClone(dept), old });
    return dept;
  }

  /** Deletes a department (`contact.department.deleted_v3`): marked deleted, gone from listings. */
  deleteDepartment(openDepartmentId: string): SimDepartment {
    const dept = this.department(openDepartmentId);
    const before = structuredClone(dept);
    dept.status = { is_deleted: true };
    this.onChange?.({ kind: 'department.deleted', department: before });
    return dept;
  }

  // ---------------------------------------------------------------- contact scope (per app)

  /** The app's explicit scope entries; undefined = the whole tenant. */
  scopeOf(appId: string): ContactScopeEntries | undefined {
    const s = this.scopes.get(appId);
    return s ? { departments: [...s.departments], users: [...s.users] } : undefined;
  }

  /**
   * Replaces the app's contact scope (undefined = the whole tenant again) and emits
   * `contact.scope.updated_v3` with the explicit entries added and removed. Only change events are
   * filtered by it; the read APIs still show the whole directory.
   */
  setScope(appId: string, scope: Partial<ContactScopeEntries> | undefined): void {
    const before = this.scopes.get(appId) ?? { departments: new Set(['0']), users: new Set<string>() };
    const after = scope
      ? { departments: new Set(scope.departments ?? []), users: new Set(scope.users ?? []) }
      : { departments: new Set(['0']), users: new Set<string>() };
    if (scope) this.scopes.set(appId, after);
    else this.scopes.delete(appId);
    const minus = (a: Set<string>, b: Set<string>) => [...a].filter((x) => !b.has(x));
    const added = { departments: minus(after.departments, before.departments), users: minus(after.users, before.users) };
    const removed = { departments: minus(before.departments, after.departments), users: minus(before.users, after.users) };
    if (added.departments.length + added.users.length + removed.departments.length + removed.users.length === 0) return;
    this.onChange?.({ kind: 'scope.updated', appId, added, removed });
  }

  /** Whether a department (or "0") lies inside the app's scope. */
  departmentInScope(appId: string, openDepartmentId: string): boolean {
    const s = this.scopes.get(appId);
    if (!s || s.departments.has('0')) return true;
    let cur: string | undefined = openDepartmentId;
    for (let guard = 0; cur && cur !== '0' && guard < 1000; guard += 1) {
      if (s.departments.has(cur)) return true;
      cur = this.departments.get(cur)?.parent_department_id;
    }
    return false;
  }

  /** Whether a user lies inside the app's scope (listed, or in a department inside it). */
  userInScope(appId: string, user: SimUser): boolean {
    const s = this.scopes.get(appId);
    if (!s || s.departments.has('0') || s.users.has(user.open_id)) return true;
    return user.department_ids.some((d) => d !== '0' && this.departmentInScope(appId, d));
  }

  /** Resolves a path or query id of the given type to an open_department_id ("0" stays "0"). */
  resolve(id: string, type: string | undefined): string | undefined {
    if (id === '0') return '0';
    if (type === 'department_id') return [...this.departments.values()].find((x) => x.department_id === id)?.open_department_id;
    return this.departments.has(id) ? id : undefined;
  }

  children(parentOpenId: string, recursive: boolean): SimDepartment[] {
    const direct = [...this.departments.values()].filter((x) => x.parent_department_id === parentOpenId && !x.status.is_deleted);
    if (!recursive) return direct;
    return direct.flatMap((x) => [x, ...this.children(x.open_department_id, true)]);
  }

  members(deptOpenId: string): SimUser[] {
    return [...this.users.values()].filter((x) => x.department_ids.includes(deptOpenId));
  }
}

const deptView = (d: SimDepartment, type: string | undefined, dir: ContactDirectory) => {
  const parent = d.parent_department_id === '0' ? '0' : dir.departments.get(d.parent_department_id);
  const parentId = parent === '0' || parent === undefined ? '0' : type === 'department_id' ? parent.department_id : parent.open_department_id;
  return { ...d, parent_department_id: parentId };
};

function pageSize(raw: unknown, max: number, fallback: number): number | undefined {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : undefined;
}

export function registerContactRoutes(app: FastifyInstance, ctx: DataApiContext, directory: (tenantKey: string) => ContactDirectory): void {
  app.get<{ Params: { id: string }; Querystring: Record<string, string | undefined> }>(
    '/open-apis/contact/v3/departments/:id/children',
    async (req, reply) => {
      const who = admit(ctx, req, reply, 'contact.departments.children', { perSecond: 50, perMinute: 1000 });
      if (!who) return reply;
      const size = pageSize(req.query.page_size, 50, 10);
      if (size === undefined) return larkReply(reply, 400, { code: 40011, msg: 'page size is invalid (1-50)' });
      const offset = decodePageToken(req.query.page_token);
      if (offset === undefined) return larkReply(reply, 400, { code: 40012, msg: 'page token is invalid' });
      const dir = directory(who.tenantKey);
      const parent = dir.resolve(req.params.id, req.query.department_id_type);
      if (!parent) return larkReply(reply, 400, { code: 40004, msg: 'no department authority' });
      const all = dir.children(parent, req.query.fetch_child === 'true').map((d) => deptView(d, req.query.department_id_type, dir));
      return ok(reply, servePage(ctx, 'contact.departments.children', paginate(all, offset, size)));
    },
  );

  app.get<{ Querystring: Record<string, string | undefined> }>('/open-apis/contact/v3/users/find_by_department', async (req, reply) => {
    const who = admit(ctx, req, reply, 'contact.users.find_by_department', { perSecond: 50, perMinute: 1000 });
    if (!who) return reply;
    const size = pageSize(req.query.page_size, 50, 10);
    if (size === undefined) return larkReply(reply, 400, { code: 40011, msg: 'page size is invalid (1-50)' });
    const offset = decodePageToken(req.query.page_token);
    if (offset === undefined) return larkReply(reply, 400, { code: 40012, msg: 'page token is invalid' });
    const userIdType = req.query.user_id_type ?? 'open_id';
    if (userIdType === 'user_id' && ctx.sim.getApp(who.appId).kind === 'store') {
      // user_id needs contact:user.employee_id:readonly, a custom-app-only scope (contact.md §1).
      return larkReply(reply, 400, {
        code: 99991672,
        msg: 'Access denied. One of the following scopes is required: [contact:user.employee_id:readonly]',
      });
    }
    const dir = directory(who.tenantKey);
    const dept = dir.resolve(req.query.department_id ?? '', req.query.department_id_type);
    if (!dept) return larkReply(reply, 400, { code: 40004, msg: 'no department authority' });
    const custom = ctx.sim.getApp(who.appId).kind === 'custom';
    const all = dir.members(dept).map((u) => userView(u, dir, custom, userIdType));
    return ok(reply, servePage(ctx, 'contact.users.find_by_department', paginate(all, offset, size)));
  });

  // contact.md §4 lists GET /contact/v3/users/:user_id ("get user") beside find_by_department, with
  // the same user object. Its answer shape ({ user }) and its code for a user who is gone or
  // outside the app's scope (41050 here) are not in the notes (unconfirmed); the rate limit is
  // taken to be the listing's (unconfirmed).
  app.get<{ Params: { user_id: string }; Querystring: Record<string, string | undefined> }>('/open-apis/contact/v3/users/:user_id', async (req, reply) => {
    const who = admit(ctx, req, reply, 'contact.users.get', { perSecond: 50, perMinute: 1000 });
    if (!who) return reply;
    const userIdType = req.query.user_id_type ?? 'open_id';
    const custom = ctx.sim.getApp(who.appId).kind === 'custom';
    if (userIdType === 'user_id' && !custom) {
      return larkReply(reply, 400, { code: 99991672, msg: 'Access denied. One of the following scopes is required: [contact:user.employee_id:readonly]' });
    }
    const dir = directory(who.tenantKey);
    const id = req.params.user_id;
    const user = [...dir.users.values()].find((u) => (userIdType === 'union_id' ? u.union_id : userIdType === 'user_id' ? u.user_id : u.open_id) === id);
    if (!user || !dir.userInScope(who.appId, user)) return larkReply(reply, 400, { code: 41050, msg: 'no user authority' });
    return ok(reply, { user: userView(user, dir, custom, userIdType) });
  });

  // The department's own read: the children listing's object ({ department }); a department
  // deleted in Lark reads with status.is_deleted true, one outside the scope is refused with the
  // listing's code (contact.md §5; both unconfirmed for this call).
  app.get<{ Params: { department_id: string }; Querystring: Record<string, string | undefined> }>(
    '/open-apis/contact/v3/departments/:department_id',
    async (req, reply) => {
      const who = admit(ctx, req, reply, 'contact.departments.get', { perSecond: 50, perMinute: 1000 });
      if (!who) return reply;
      const dir = directory(who.tenantKey);
      const id = dir.resolve(req.params.department_id, req.query.department_id_type);
      const dept = id && id !== '0' ? dir.departments.get(id) : undefined;
      if (!dept || !dir.departmentInScope(who.appId, dept.open_department_id)) return larkReply(reply, 400, { code: 40004, msg: 'no department authority' });
      return ok(reply, { department: deptView(dept, req.query.department_id_type, dir) });
    },
  );
}

/** A user as a read shows it to an app: email and mobile (custom-app-only scopes) only for custom apps. */
function userView(u: SimUser, dir: ContactDirectory, custom: boolean, userIdType: string): Record<string, unknown> {
  const { user_id, employee_no, email, mobile, ...rest } = u;
  // email and mobile need custom-app-only scopes (contact.md); custom apps see them when set.
  if (custom) Object.assign(rest, email === undefined ? {} : { email }, mobile === undefined ? {} : { mobile });
  const withNo = dir.employeeNumberScope ? { ...rest, employee_no } : rest;
  return userIdType === 'user_id' ? { ...withNo, user_id } : withNo;
}
