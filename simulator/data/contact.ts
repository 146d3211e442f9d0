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
}

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
  /**
   * Whether this tenant's app holds contact:user.employee_number:read; user objects then carry
   * `employee_no` (contact.md §4). Off by default, as no connector asked for it before attendance.
   */
  employeeNumberScope = false;

  static generate(tenantKey: string, shape: ContactShape = defaultContactShape): ContactDirectory {
    const dir = new ContactDirectory();
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
    return dir;
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
    const all = dir.members(dept).map((u) => {
      const { user_id, employee_no, ...rest } = u;
      const withNo = dir.employeeNumberScope ? { ...rest, employee_no } : rest;
      return userIdType === 'user_id' ? { ...withNo, user_id } : withNo;
    });
    return ok(reply, servePage(ctx, 'contact.users.find_by_department', paginate(all, offset, size)));
  });
}
