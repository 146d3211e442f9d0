import type { LarkSimulator, TenantIdentity } from '../lark-simulator.js';
import { ContactDirectory, defaultContactShape, registerContactRoutes, type ContactShape } from './contact.js';
import { SimRateLimiter, type DataApiContext } from './support.js';

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
  enforceRateLimits: boolean;
  contactShape: ContactShape;
  /** Runs before each data page is served: edit or delete data "between pages". */
  onPage: ((api: string, who: TenantIdentity) => void) | undefined;

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
    };
    registerContactRoutes(sim.app, ctx, (t) => this.contact(t));
  }

  contact(tenantKey: string): ContactDirectory {
    let dir = this.contacts.get(tenantKey);
    if (!dir) {
      dir = ContactDirectory.generate(tenantKey, this.contactShape);
      this.contacts.set(tenantKey, dir);
    }
    return dir;
  }
}
