import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ContactDirectory, SimUser } from './contact.js';
import { admit, larkReply, ok, seededRandom, type DataApiContext } from './support.js';

/** A `user_flow_results[]` item as Lark sends it (attendance.md §1), ids still per employee_type. */
export interface SimFlow {
  user_id: string;
  creator_id: string;
  location_name: string;
  check_time: string;
  comment: string;
  record_id: string;
  longitude: number;
  latitude: number;
  ssid: string;
  bssid: string;
  is_field: boolean;
  is_wifi: boolean;
  type: number;
  photo_urls: string[];
  device_id: string;
  check_result: string;
  external_id: string;
  idempotent_id: string;
}

export type EmployeeType = 'employee_id' | 'employee_no';

/** One punch, with its people as open_ids so the same record answers under either employee_type. */
interface Punch {
  record_id: string;
  userOpenId: string;
  creatorOpenId: string;
  checkTime: number;
  location_name: string;
  comment: string;
  is_field: boolean;
  is_wifi: boolean;
  type: number;
}

/** What a test can read back: each accepted query, to check batch sizes and the id type used. */
export interface FlowQuery {
  appId: string;
  employeeType: EmployeeType;
  userIds: string[];
  from: number;
  to: number;
}

const DAY = 86_400;
// The simulated tenant works in UTC+8 (Feishu's home zone) so "workday" and "09:00" mean something;
// which zone does not matter to the connector, it only sends Unix-second windows.
const TZ_OFFSET = 8 * 3600;
const MAX_USER_IDS = 50;

/** A stable numeric-looking id, like Lark's 19-digit record ids. */
function recordId(seed: string): string {
  const n = BigInt(`0x${createHash('sha256').update(seed).digest('hex').slice(0, 15)}`);
  return `7${n.toString().padStart(18, '0').slice(0, 18)}`;
}

/**
 * One tenant's clock-in flows, derived on demand from its contact directory: every user punches
 * in around 09:00 and out around 18:00 (local) on most weekdays, sometimes with a field punch in
 * between. Generated per (user, day) from a seed, so the same window always answers the same
 * records, and punches in the future never exist yet. Tests add corrections on top.
 */
export class AttendanceBook {
  readonly queries: FlowQuery[] = [];
  private readonly corrections: Punch[] = [];

  constructor(
    private readonly tenantKey: string,
    private readonly directory: () => ContactDirectory,
  ) {}

  /** A correction (user correction, type 2) for a past time: a new record, as Lark adds one. */
  addCorrection(userOpenId: string, checkTime: number, comment = 'correction'): string {
    const id = recordId(`attendance:${this.tenantKey}:correction:${this.corrections.length}`);
    this.corrections.push({
      record_id: id,
      userOpenId,
      creatorOpenId: userOpenId,
      checkTime,
      location_name: 'HQ',
      comment,
      is_field: false,
      is_wifi: false,
      type: 2,
    });
    return id;
  }

  /** Looks a requested id up the way employee_type says to read it. */
  findUser(id: string, type: EmployeeType): SimUser | undefined {
    for (const u of this.directory().users.values()) {
      if ((type === 'employee_id' ? u.user_id : u.employee_no) === id) return u;
    }
    return undefined;
  }

  /** Punches of one user with from <= check_time <= to (both inclusive, as Lark's example window is). */
  punches(user: SimUser, from: number, to: number, now = Math.floor(Date.now() / 1000)): Punch[] {
    const out: Punch[] = [];
    const last = Math.min(to, now);
    for (let day = Math.floor((from + TZ_OFFSET) / DAY); day * DAY - TZ_OFFSET <= last; day += 1) {
      for (const p of this.dayPunches(user, day)) if (p.checkTime >= from && p.checkTime <= last) out.push(p);
    }
    for (const p of this.corrections) {
      if (p.userOpenId === user.open_id && p.checkTime >= from && p.checkTime <= last) out.push(p);
    }
    return out.sort((a, b) => a.checkTime - b.checkTime);
  }

  private dayPunches(user: SimUser, day: number): Punch[] {
    const weekday = (day + 4) % 7; // 1970-01-01 was a Thursday; 0 = Sunday
    if (weekday === 0 || weekday === 6) return [];
    const rnd = seededRandom(`attendance:${this.tenantKey}:${user.open_id}:${day}`);
    if (rnd() < 0.05) return []; // a day off
    const start = day * DAY - TZ_OFFSET;
    const punch = (i: number, at: number, extra: Partial<Punch>): Punch => {
      const wifi = rnd() < 0.6;
      return {
        record_id: recordId(`attendance:${this.tenantKey}:${user.open_id}:${day}:${i}`),
        userOpenId: user.open_id,
        creatorOpenId: user.open_id,
        checkTime: at,
        location_name: wifi ? 'HQ' : 'HQ (GPS)',
        comment: '',
        is_field: false,
        is_wifi: wifi,
        type: rnd() < 0.2 ? 5 : 0,
        ...extra,
      };
    };
    const punches = [punch(0, start + 9 * 3600 - 1800 + Math.floor(rnd() * 2400), {})];
    if (rnd() < 0.1) {
      punches.push(punch(1, start + 13 * 3600 + Math.floor(rnd() * 3600), { location_name: 'Customer site', is_field: true, is_wifi: false, type: 0 }));
    }
    punches.push(punch(2, start + 18 * 3600 + Math.floor(rnd() * 5400), {}));
    return punches;
  }

  view(p: Punch, type: EmployeeType): SimFlow | undefined {
    const users = this.directory().users;
    const idOf = (openId: string) => {
      const u = users.get(openId);
      return u ? (type === 'employee_id' ? u.user_id : u.employee_no) : undefined;
    };
    const userId = idOf(p.userOpenId);
    if (userId === undefined) return undefined;
    return {
      user_id: userId,
      creator_id: idOf(p.creatorOpenId) ?? userId,
      location_name: p.location_name,
      check_time: String(p.checkTime),
      comment: p.comment,
      record_id: p.record_id,
      longitude: p.is_wifi ? 0 : 121.47,
      latitude: p.is_wifi ? 0 : 31.23,
      ssid: p.is_wifi ? 'corp-wifi' : '',
      bssid: p.is_wifi ? 'b0:b8:67:5c:1d:72' : '',
      is_field: p.is_field,
      is_wifi: p.is_wifi,
      type: p.type,
      photo_urls: [],
      device_id: '',
      check_result: 'Normal',
      external_id: '',
      idempotent_id: '',
    };
  }
}

const invalid = (reply: Parameters<typeof larkReply>[0], field: string) =>
  larkReply(reply, 400, { code: 1220001, msg: `${field} invalid` });

const isUnixSeconds = (v: unknown): v is string => typeof v === 'string' && /^\d{1,12}$/.test(v);

export function registerAttendanceRoutes(app: FastifyInstance, ctx: DataApiContext, book: (tenantKey: string) => AttendanceBook): void {
  app.post<{ Querystring: Record<string, string | undefined>; Body: unknown }>(
    '/open-apis/attendance/v1/user_flows/query',
    async (req, reply) => {
      const who = admit(ctx, req, reply, 'attendance.user_flows.query', { perSecond: 50 });
      if (!who) return reply;
      if (ctx.sim.getApp(who.appId).kind === 'store') {
        // The docs list custom apps only (attendance.md §0); what a store app gets is unconfirmed.
        // A missing-scope answer (99991672, HTTP 400 like the contact route's) is the likeliest:
        // a store app cannot enable attendance:task:readonly at all.
        return larkReply(reply, 400, {
          code: 99991672,
          msg: 'Access denied. One of the following scopes is required: [attendance:task:readonly]',
        });
      }
      const type = req.query.employee_type;
      if (type !== 'employee_id' && type !== 'employee_no') return invalid(reply, 'employee_type');
      const body = (req.body ?? {}) as { user_ids?: unknown; check_time_from?: unknown; check_time_to?: unknown };
      const ids = body.user_ids;
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_USER_IDS || !ids.every((x) => typeof x === 'string' && x !== '')) {
        return invalid(reply, 'user_ids');
      }
      if (!isUnixSeconds(body.check_time_from)) return invalid(reply, 'check_time_from');
      if (!isUnixSeconds(body.check_time_to)) return invalid(reply, 'check_time_to');
      const from = Number(body.check_time_from);
      const to = Number(body.check_time_to);
      if (from > to) return invalid(reply, 'check_time_to');
      // No span limit: Lark documents none for this endpoint (unconfirmed), so the simulator
      // doesn't invent one.
      const flows = book(who.tenantKey);
      const users: SimUser[] = [];
      for (const id of ids as string[]) {
        const u = flows.findUser(id, type);
        // This endpoint has no ignore_invalid_users switch and no invalid_user_ids list; its error
        // table has 1220004 "user_id is not exist or does not have permission", so one unknown id
        // fails the call (the user_tasks default). Unconfirmed against the live API.
        if (!u) return larkReply(reply, 400, { code: 1220004, msg: `user_id is not exist or does not have permission: ${id}` });
        if (!users.includes(u)) users.push(u);
      }
      flows.queries.push({ appId: who.appId, employeeType: type, userIds: [...(ids as string[])], from, to });
      // The simulator's clock decides which punches have happened yet (tests can move it).
      const now = Math.floor(ctx.sim.now() / 1000);
      const results = users.flatMap((u) =>
        flows.punches(u, from, to, now).map((p) => flows.view(p, type)).filter((f): f is SimFlow => f !== undefined),
      );
      return ok(reply, { user_flow_results: results });
    },
  );
}
