import type { LarkSimulator, TenantIdentity } from '../lark-simulator.js';
import { ApprovalTenant, registerApprovalRoutes, type ApprovalShape } from './approval.js';
import { ContactDirectory, defaultContactShape, registerContactRoutes, type ContactShape } from './contact.js';
import { AttendanceBook, registerAttendanceRoutes } from './attendance.js';
import { createBitableTenant, registerBitableRoutes, type BitableShape, type BitableTenant } from './bitable/index.js';
import { SimRateLimiter, type DataApiContext, type PagedApi } from './support.js';

export type { PagedApi };

export interface DataApiOptions {
  /** Enforce Lark's documented frequency limits (default true). */
  enforceRateLimits?: boolean;
  contactShape?: ContactShape;
}

/**
 * The data APIs the connectors read (contact, approval, bitable, attendance, wiki), with
 * deterministic per-tenant data generated on first use, Lark's limits, and hooks for tests that
 * change data between pages.
 */
export class SimData {
  readonly limiter: SimRateLimiter;
  private readonly contacts = new Map<string, ContactDirectory>();
  private readonly approvals = new Map<string, ApprovalTenant>();
  private readonly attendanceBooks = new Map<string, AttendanceBook>();
  private readonly bitables = new Map<string, BitableTenant>();
  enforceRateLimits: boolean;
  contactShape: ContactShape;
  /** Runs before each data page is served: edit or delete data "between pages". */
  onPage: ((api: string, who: TenantIdentity) => void) | undefined;
  /** Pages still to be cut short, per API (truncateListings). */
  private readonly truncations = new Map<PagedApi, number>();

  constructor(
    readonly sim: LarkSimulator,
    opts: DataApiOptions = {},
  ) {
    this.enforceRateLimits = opts.enforceRateLimits ?? true;
    this.contactShape = opts.contactShape ?? defaultContactShape;
    this.limiter = new SimRateLimiter(() => this.enforceRateLimits);
    const ctx: DataApiContext = {
      sim,
      limiter: this.limiter,
      onPage: (api, who) => this.onPage?.(api, who),
      takeTruncation: (api) => this.takeTruncation(api),
    };
    registerContactRoutes(sim.app, ctx, (t) => this.contact(t));
    registerApprovalRoutes(sim.app, ctx, (t) => this.approval(t));
    registerAttendanceRoutes(sim.app, ctx, (t) => this.attendance(t));
    registerBitableRoutes(sim.app, ctx, (t) => this.bitable(t));
    // The people who can sign in through the authorize page are the tenants' contact users.
    sim.oauth.users.useDirectory((t) => this.contact(t).users.values());
  }

  /**
   * The next `count` successful pages of `api` (any tenant) end early, as Lark sometimes answers
   * (review finding L5): their items as usual, but `has_more: true` and no `page_token`.
   */
  truncateListings(api: PagedApi, count = 1): void {
    this.truncations.set(api, (this.truncations.get(api) ?? 0) + count);
  }

  private takeTruncation(api: PagedApi): boolean {
    const left = this.truncations.get(api) ?? 0;
    if (left <= 0) return false;
    this.truncations.set(api, left - 1);
    return true;
  }

  contact(tenantKey: string): ContactDirectory {
    let dir = this.contacts.get(tenantKey);
    if (!dir) {
      dir = ContactDirectory.generate(tenantKey, this.contactShape);
      this.contacts.set(tenantKey, dir);
    }
    return dir;
  }

  /** A tenant's approval data; the first call may pass a shape (later calls get the same data). */
  approval(tenantKey: string, shape?: ApprovalShape): ApprovalTenant {
    let data = this.approvals.get(tenantKey);
    if (!data) {
      data = ApprovalTenant.generate(tenantKey, shape);
      this.approvals.set(tenantKey, data);
    }
    return data;
  }

  /** A tenant's clock-in flows, for its contact users (the directory is read at query time). */
  attendance(tenantKey: string): AttendanceBook {
    let book = this.attendanceBooks.get(tenantKey);
    if (!book) {
      book = new AttendanceBook(tenantKey, () => this.contact(tenantKey));
      this.attendanceBooks.set(tenantKey, book);
    }
    return book;
  }

  /** A tenant's Bases and wiki nodes; the first call may pass a shape (later calls get the same data). */
  bitable(tenantKey: string, shape?: Partial<BitableShape>): BitableTenant {
    let data = this.bitables.get(tenantKey);
    if (!data) {
      data = createBitableTenant(tenantKey, () => this.sim.now(), shape);
      this.bitables.set(tenantKey, data);
    }
    return data;
  }
}
