import type { LarkSimulator, TenantIdentity } from '../lark-simulator.js';
import { ApprovalTenant, registerApprovalRoutes, type ApprovalShape } from './approval.js';
import { ContactDirectory, defaultContactShape, registerContactRoutes, type ContactShape } from './contact.js';
import { AttendanceBook, registerAttendanceRoutes } from './attendance.js';
import {
  bitableWikiNode,
  createBitableTenant,
  defaultBitableWriteOptions,
  registerBitableRoutes,
  registerBitableWriteRoutes,
  registerMediaRoutes,
  sumWriteStats,
  type BaseWriteStats,
  type BitableShape,
  type BitableTenant,
  type BitableWriteOptions,
} from './bitable/index.js';
import {
  defaultDocsSeed,
  defaultDocsShape,
  generateDocs,
  registerDocsRoutes,
  type DocsApi,
  type DocsFaults,
  type DocsOptions,
  type DocsShape,
  type DocsTenant,
} from './docs/index.js';
import { SimRateLimiter, seededRandom, type DataApiContext, type DocsPagedApi, type PagedApi, type TruncatableApi } from './support.js';
import { ChangeFeed } from '../events/feed.js';
import { registerEventRoutes } from '../events/routes.js';
import { DataChanges } from './change-source.js';

export type { DocsPagedApi, PagedApi, TruncatableApi };

export interface DataApiOptions {
  /** Enforce Lark's documented frequency limits (default true). */
  enforceRateLimits?: boolean;
  contactShape?: ContactShape;
  /** Base record write behaviour: latency, 1254607 thresholds, limits (bitable/writes.ts). */
  bitableWrites?: Partial<BitableWriteOptions>;
  /** Docs API limits, their scope, and random faults (docs/routes.ts). */
  docs?: Partial<DocsOptions>;
}

/**
 * The data APIs the connectors read (contact, approval, bitable, attendance, and Drive, wiki and
 * docx documents in docs/), with deterministic per-tenant data generated on first use, Lark's
 * limits, and hooks for tests that change data between pages.
 */
export class SimData {
  readonly limiter: SimRateLimiter;
  private readonly contacts = new Map<string, ContactDirectory>();
  private readonly approvals = new Map<string, ApprovalTenant>();
  private readonly attendanceBooks = new Map<string, AttendanceBook>();
  private readonly bitables = new Map<string, BitableTenant>();
  private readonly docsTenants = new Map<string, DocsTenant>();
  /** Docs API limits (per-API overrides), the 5/s scope and random faults; change them at any time. */
  readonly docsOptions: DocsOptions;
  private docsFaultDraw: (() => number) | undefined;
  /** Docs calls answered with a random fault so far. */
  docsFaultsInjected = 0;
  enforceRateLimits: boolean;
  contactShape: ContactShape;
  /**
   * Base record write behaviour for every tenant (bitable/writes.ts); change fields at any time,
   * later calls use them.
   */
  readonly bitableWrites: BitableWriteOptions;
  /** Runs before each data page is served: edit or delete data "between pages". */
  onPage: ((api: string, who: TenantIdentity) => void) | undefined;
  /** Pages still to be cut short, per API (truncateListings). */
  private readonly truncations = new Map<TruncatableApi, number>();
  /** Turns every data change into the change events of the apps that receive them (events/feed.ts). */
  private readonly feed: ChangeFeed;

  constructor(
    readonly sim: LarkSimulator,
    opts: DataApiOptions = {},
  ) {
    this.enforceRateLimits = opts.enforceRateLimits ?? true;
    this.contactShape = opts.contactShape ?? defaultContactShape;
    this.bitableWrites = { ...defaultBitableWriteOptions, ...opts.bitableWrites };
    this.limiter = new SimRateLimiter(() => this.enforceRateLimits);
    this.feed = new ChangeFeed(sim, this);
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
    registerBitableWriteRoutes(sim.app, ctx, (t) => this.bitable(t), () => this.bitableWrites);
    registerMediaRoutes(sim.app, ctx, (t) => this.bitable(t), () => this.bitableWrites.mediaMaxBytes);
    this.docsOptions = { limits: { ...opts.docs?.limits }, contentLimitScope: opts.docs?.contentLimitScope ?? 'app', faults: undefined };
    this.setDocsFaults(opts.docs?.faults);
    registerDocsRoutes(sim.app, ctx, {
      tenant: (t) => this.docs(t),
      options: this.docsOptions,
      fault: (api) => this.drawDocsFault(api),
      user: (t, openId) => sim.oauth.users.find(t, openId),
      otherNode: (t, token, objType) => bitableWikiNode(this.bitable(t), t, token, objType),
    });
    // The subscribe calls that gate approval, Base and Docs change events (events/routes.ts).
    registerEventRoutes(sim.app, ctx, { approval: (t) => this.approval(t), bitable: (t) => this.bitable(t), docs: (t) => this.docs(t) });
    // The people who can sign in through the authorize page are the tenants' contact users.
    sim.oauth.users.useDirectory((t) => this.contact(t).users.values());
    // What sim.events.generate() changes.
    sim.events.useChangeSource(new DataChanges(sim, this));
  }

  /**
   * The next `count` successful pages of `api` (any tenant) end early, as Lark sometimes answers
   * (review finding L5): their items as usual, but `has_more: true` and no `page_token`.
   */
  truncateListings(api: TruncatableApi, count = 1): void {
    this.truncations.set(api, (this.truncations.get(api) ?? 0) + count);
  }

  private takeTruncation(api: TruncatableApi): boolean {
    const left = this.truncations.get(api) ?? 0;
    if (left <= 0) return false;
    this.truncations.set(api, left - 1);
    return true;
  }

  contact(tenantKey: string): ContactDirectory {
    let dir = this.contacts.get(tenantKey);
    if (!dir) {
      const created = ContactDirectory.generate(tenantKey, this.contactShape);
      created.onChange = (change) => this.feed.contact(tenantKey, created, change);
      this.contacts.set(tenantKey, created);
      dir = created;
    }
    return dir;
  }

  /** A tenant's approval data; the first call may pass a shape (later calls get the same data). */
  approval(tenantKey: string, shape?: ApprovalShape): ApprovalTenant {
    let data = this.approvals.get(tenantKey);
    if (!data) {
      data = ApprovalTenant.generate(tenantKey, shape);
      data.now = () => this.sim.now();
      data.onStatus = (inst, status, atMs) => this.feed.approval(tenantKey, inst, status, atMs);
      data.onTask = (inst, task, status, atMs) => this.feed.approvalTask(tenantKey, inst, task, status, atMs);
      data.onCc = (inst, cc, operate, atMs) => this.feed.approvalCc(tenantKey, inst, cc, operate, atMs);
      data.wantsEvents = (code) => this.feed.wantsApproval(tenantKey, code);
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

  /**
   * Base record write counters summed over every tenant and Base so far (a snapshot): a benchmark
   * asserts `overlaps === 0` for a client that keeps to one write call at a time per Base.
   */
  bitableWriteTotals(): BaseWriteStats {
    return sumWriteStats([...this.bitables.values()].map((b) => b.writeTotals()));
  }

  /** A tenant's Bases and wiki nodes; the first call may pass a shape (later calls get the same data). */
  bitable(tenantKey: string, shape?: Partial<BitableShape>): BitableTenant {
    let data = this.bitables.get(tenantKey);
    if (!data) {
      data = createBitableTenant(tenantKey, () => this.sim.now(), shape);
      for (const { appToken, table } of data.allTables()) table.onChange = (set) => this.feed.table(tenantKey, appToken, table, set);
      this.bitables.set(tenantKey, data);
    }
    return data;
  }

  /**
   * A tenant's Drive, wiki and documents; the first call may pass a shape (later calls get the same
   * data). The tree is generated on first use, page content when first read.
   */
  docs(tenantKey: string, shape?: Partial<DocsShape>): DocsTenant {
    let data = this.docsTenants.get(tenantKey);
    if (!data) {
      const created = generateDocs(tenantKey, { ...defaultDocsShape, seed: defaultDocsSeed(tenantKey), ...shape }, () => this.sim.now());
      created.onChange = (change) => this.feed.docs(tenantKey, created, change);
      this.docsTenants.set(tenantKey, created);
      data = created;
    }
    return data;
  }

  /**
   * Random faults on the docs APIs: `rate` of the admitted calls (of `apis`, default all) answer
   * their family's internal error, chosen by a generator seeded with `seed`. Undefined = none.
   */
  setDocsFaults(faults: DocsFaults | undefined): void {
    this.docsOptions.faults = faults ? { ...faults } : undefined;
    this.docsFaultDraw = faults ? seededRandom(`faults:${faults.seed}`) : undefined;
  }

  private drawDocsFault(api: DocsApi): boolean {
    const f = this.docsOptions.faults;
    if (!f || !this.docsFaultDraw || (f.apis && !f.apis.includes(api))) return false;
    const hit = this.docsFaultDraw() < f.rate;
    if (hit) this.docsFaultsInjected += 1;
    return hit;
  }

  /** Docs calls of every tenant (see DocsTenant.count): one API, several, or all. */
  docsCalls(api?: DocsApi | readonly DocsApi[], filter: { target?: string; code?: number; principal?: string } = {}): number {
    let n = 0;
    for (const t of this.docsTenants.values()) n += t.count(api, filter);
    return n;
  }
}
