import type { SyncContext } from '../../sync/sync-module.js';
import { SyncError } from '../../sync/sync-errors.js';
import type { AttendanceConfigType } from './config.js';
import type { LarkContactPage, LarkContactUser } from './lark-types.js';

const ROOT_DEPARTMENT = '0';
const PAGE_SIZE = 50;

/**
 * Where the ids to query come from, as a small resumable cursor. Either the configured list, or
 * a walk of Contact from the root: the root's own users first, then every department (listed 50
 * at a time with fetch_child=true) and its direct users. Only the current page of departments is
 * kept, never the whole tenant, so the checkpoint stays small however big the tenant is.
 */
export type Listing =
  | { kind: 'explicit'; offset: number }
  | {
      kind: 'contact';
      /** department whose users are being listed */
      current: string | null;
      userPageToken: string | null;
      /** departments of the current children page not listed yet */
      queue: string[];
      deptPageToken: string | null;
      deptsDone: boolean;
      /** users seen, and those without an id of the configured type (employee_no is optional) */
      seen: number;
      withoutId: number;
    };

export function startListing(config: AttendanceConfigType): Listing {
  if (config.employeeIds) return { kind: 'explicit', offset: 0 };
  return { kind: 'contact', current: ROOT_DEPARTMENT, userPageToken: null, queue: [], deptPageToken: null, deptsDone: false, seen: 0, withoutId: 0 };
}

export interface ListStep {
  ids: string[];
  listing: Listing;
  finished: boolean;
  /** whether this step spent an upstream call (a page then ends, one call per page) */
  called: boolean;
}

function explicitIds(config: AttendanceConfigType): string[] {
  return [...new Set(config.employeeIds ?? [])];
}

/**
 * employee_id is the contact user_id (attendance.md, employee_type), readable only with
 * user_id_type=user_id. employee_no is a user field of its own (scope
 * contact:user.employee_number:read), independent of the id type, so open_id is asked for then.
 */
function idOf(u: LarkContactUser, type: AttendanceConfigType['employeeType']): string | undefined {
  const id = type === 'employee_id' ? u.user_id : u.employee_no;
  return id ? id : undefined;
}

async function contactCall<T>(ctx: SyncContext<AttendanceConfigType>, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof SyncError && err.errorClass === 'permission_denied') {
      throw new SyncError(
        'permission_denied',
        `${err.message}. Without employeeIds, attendance lists users through Contact from the root department, ` +
          `which needs the app's contact scope to cover all members${ctx.config.employeeType === 'employee_id' ? ' and contact:user.employee_id:readonly' : ''}; ` +
          'otherwise list employeeIds in the connector config',
      );
    }
    throw err;
  }
}

export async function listStep(ctx: SyncContext<AttendanceConfigType>, listing: Listing): Promise<ListStep> {
  if (listing.kind === 'explicit') {
    const all = explicitIds(ctx.config);
    const ids = all.slice(listing.offset, listing.offset + PAGE_SIZE);
    const offset = listing.offset + ids.length;
    return { ids, listing: { kind: 'explicit', offset }, finished: offset >= all.length, called: false };
  }

  if (listing.current === null) {
    const [next, ...rest] = listing.queue;
    if (next !== undefined) return listStep(ctx, { ...listing, current: next, userPageToken: null, queue: rest });
    if (listing.deptsDone) return { ids: [], listing, finished: true, called: false };
    const data = await contactCall(ctx, () =>
      ctx.lark.call<LarkContactPage<{ open_department_id?: string; status?: { is_deleted?: boolean } }>>('contact.departments.children', {
        method: 'GET',
        path: `/open-apis/contact/v3/departments/${ROOT_DEPARTMENT}/children`,
        endpoint: '/open-apis/contact/v3/departments/:id/children',
        query: {
          fetch_child: true,
          page_size: PAGE_SIZE,
          page_token: listing.deptPageToken ?? undefined,
          department_id_type: 'open_department_id',
        },
      }),
    );
    const queue = (data.items ?? []).flatMap((d) => (d.open_department_id && !d.status?.is_deleted ? [d.open_department_id] : []));
    const more = Boolean(data.has_more && data.page_token);
    const after: Listing = { ...listing, queue, deptPageToken: more ? (data.page_token ?? null) : null, deptsDone: !more };
    return { ids: [], listing: after, finished: !more && queue.length === 0, called: true };
  }

  const type = ctx.config.employeeType;
  const department = listing.current;
  const data = await contactCall(ctx, () =>
    ctx.lark.call<LarkContactPage<LarkContactUser>>('contact.users.find_by_department', {
      method: 'GET',
      path: '/open-apis/contact/v3/users/find_by_department',
      query: {
        department_id: department,
        department_id_type: 'open_department_id',
        user_id_type: type === 'employee_id' ? 'user_id' : 'open_id',
        page_size: PAGE_SIZE,
        page_token: listing.userPageToken ?? undefined,
      },
    }),
  );
  const users = data.items ?? [];
  const ids = users.map((u) => idOf(u, type)).filter((id): id is string => id !== undefined);
  const more = Boolean(data.has_more && data.page_token);
  const next: Listing = {
    ...listing,
    current: more ? listing.current : null,
    userPageToken: more ? (data.page_token ?? null) : null,
    seen: listing.seen + users.length,
    withoutId: listing.withoutId + users.length - ids.length,
  };
  return { ids, listing: next, finished: !more && listing.queue.length === 0 && listing.deptsDone, called: true };
}

/**
 * Users listed but none carried the configured id: the app lacks the field scope, and "success
 * with no flows" would hide that. Some users without an employee_no is normal (it is optional).
 */
export function checkListingComplete(ctx: SyncContext<AttendanceConfigType>, listing: Listing): void {
  if (listing.kind !== 'contact') return;
  if (listing.seen > 0 && listing.withoutId === listing.seen) {
    const field = ctx.config.employeeType === 'employee_id' ? 'user_id' : 'employee_no';
    const scope = ctx.config.employeeType === 'employee_id' ? 'contact:user.employee_id:readonly' : 'contact:user.employee_number:read';
    throw new SyncError(
      'permission_denied',
      `Contact listed ${listing.seen} users but none carried ${field}, which attendance needs as ${ctx.config.employeeType}: ` +
        `grant the app the scope ${scope}, or list employeeIds in the connector config`,
    );
  }
  if (listing.withoutId > 0) {
    ctx.log.warn(
      { runId: ctx.runId, tenantKey: ctx.tenantKey, skipped: listing.withoutId, employeeType: ctx.config.employeeType },
      'attendance: users without an id of the configured employee type were skipped',
    );
  }
}
