import { randomBytes } from 'node:crypto';
import type { SimUser } from '../data/contact.js';

/**
 * The people who can sign in to an app through the simulator's authorize page: the contact
 * directory of every tenant that installed the app (when SimData is attached), plus users a test
 * registers by name. Also who administers each tenant (`is_user_admin`).
 *
 * Simplification, left as it is: Lark gives one person a different open_id per app; the
 * simulator's ids are per tenant, the same for every app, as in its contact directory.
 */

export interface SimLarkUser {
  tenantKey: string;
  openId: string;
  unionId: string;
  userId: string;
  name: string;
  enName: string;
  email: string;
  enterpriseEmail: string;
  /** Optional on the Lark brand (auth.md §1); absent unless registered. */
  mobile?: string;
  employeeNo?: string;
  avatarUrl: string;
  /** Resigned or frozen people cannot sign in. */
  active: boolean;
}

export interface NewSimUser {
  name: string;
  openId?: string;
  unionId?: string;
  userId?: string;
  enName?: string;
  email?: string;
  mobile?: string;
  employeeNo?: string;
  /** Also makes the user an administrator of the tenant (`is_user_admin`). */
  admin?: boolean;
  /** Default true; false behaves like a resigned user (not offered, cannot authorize). */
  active?: boolean;
}

/** A directory the simulator can read people from (SimData's contact directory). */
export type UserDirectory = (tenantKey: string) => Iterable<SimUser>;

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** Made-up CDN shape; Lark's avatar URLs are signed CDN links (not documented in the notes). */
const avatar = (openId: string, size?: string) =>
  `https://s1-imfile.feishucdn.com/static-resource/v1/sim-avatar-${openId}~${size ? `?image_size=${size}&cut_type=&quality=&format=png&sticker_format=.webp` : ''}`;

export function avatarUrls(u: SimLarkUser) {
  return {
    avatar_url: u.avatarUrl,
    avatar_thumb: avatar(u.openId, '72x72'),
    avatar_middle: avatar(u.openId, '240x240'),
    avatar_big: avatar(u.openId, '640x640'),
  };
}

function fromDirectory(tenantKey: string, u: SimUser): SimLarkUser {
  return {
    tenantKey,
    openId: u.open_id,
    unionId: u.union_id,
    userId: u.user_id,
    name: u.name,
    enName: u.en_name,
    email: `${u.user_id}@${tenantKey}.example.com`,
    enterpriseEmail: `${u.user_id}@${tenantKey}.example.com`,
    employeeNo: u.employee_no,
    avatarUrl: avatar(u.open_id),
    active: !u.status.is_resigned && !u.status.is_frozen && !u.status.is_exited,
  };
}

export class SimUserRegistry {
  private readonly registered = new Map<string, Map<string, SimLarkUser>>();
  /** tenant key -> open ids of its administrators; absent = the default set (see admins()). */
  private readonly adminSets = new Map<string, Set<string>>();
  private directory: UserDirectory | undefined;

  /** Reads people from a contact directory too (SimData calls this). */
  useDirectory(directory: UserDirectory | undefined): void {
    this.directory = directory;
  }

  add(tenantKey: string, user: NewSimUser): SimLarkUser {
    const openId = user.openId ?? `ou_${hex(16)}`;
    const userId = user.userId ?? hex(4);
    const email = user.email ?? `${userId}@${tenantKey}.example.com`;
    const u: SimLarkUser = {
      tenantKey,
      openId,
      unionId: user.unionId ?? `on_${hex(16)}`,
      userId,
      name: user.name,
      enName: user.enName ?? user.name,
      email,
      enterpriseEmail: email,
      ...(user.mobile ? { mobile: user.mobile } : {}),
      ...(user.employeeNo ? { employeeNo: user.employeeNo } : {}),
      avatarUrl: avatar(openId),
      active: user.active ?? true,
    };
    const tenant = this.registered.get(tenantKey) ?? new Map<string, SimLarkUser>();
    tenant.set(openId, u);
    this.registered.set(tenantKey, tenant);
    if (user.admin) this.admins(tenantKey).add(openId);
    return u;
  }

  /** A tenant's people: registered ones first, then the directory's. */
  list(tenantKey: string): SimLarkUser[] {
    const out = [...(this.registered.get(tenantKey)?.values() ?? [])];
    const seen = new Set(out.map((u) => u.openId));
    for (const u of this.directory?.(tenantKey) ?? []) if (!seen.has(u.open_id)) out.push(fromDirectory(tenantKey, u));
    return out;
  }

  find(tenantKey: string, openId: string): SimLarkUser | undefined {
    const registered = this.registered.get(tenantKey)?.get(openId);
    if (registered) return registered;
    for (const u of this.directory?.(tenantKey) ?? []) if (u.open_id === openId) return fromDirectory(tenantKey, u);
    return undefined;
  }

  /**
   * The tenant's administrators, editable in place. By default it holds the installer the
   * simulator names in its app_open push (`ou_admin_<tenantKey>`, events.md §8.2).
   */
  admins(tenantKey: string): Set<string> {
    let set = this.adminSets.get(tenantKey);
    if (!set) {
      set = new Set([`ou_admin_${tenantKey}`]);
      this.adminSets.set(tenantKey, set);
    }
    return set;
  }

  setAdmins(tenantKey: string, openIds: Iterable<string>): void {
    this.adminSets.set(tenantKey, new Set(openIds));
  }
}
