import { seededRandom } from '../data/support.js';

/**
 * A steady stream of data changes across tenants, each emitting its change events the way a test
 * edit does (`sim.events.generate(...)`): the realtime benchmark runs it at 200 changes/s over
 * 100 tenants while a large Base sync runs. Which tenant and kind each change hits is drawn from
 * a seeded generator, so a run can be repeated.
 */

export type ChangeKind = 'contact' | 'approval' | 'bitable' | 'docs';
export const CHANGE_KINDS: readonly ChangeKind[] = ['contact', 'approval', 'bitable', 'docs'];

export interface GenerateOptions {
  /** Changes per second, over all tenants. */
  perSecond: number;
  /** Tenant keys the changes are spread over (drawn at random, seeded). */
  tenants: string[];
  /** Kinds of change (default all four). */
  kinds?: readonly ChangeKind[];
  /** Seed of the draws (default 'generate'). */
  seed?: string;
  /** Stop after this many changes. */
  total?: number;
  /** Stop after this long. */
  durationMs?: number;
  /**
   * First subscribe every app installed in the tenants to what the changes touch (approval codes,
   * the Base table and documents edited), as if each had called the subscribe APIs. Default false:
   * only existing subscriptions get approval, Base and Docs events (contact events need none).
   */
  autoSubscribe?: boolean;
  /** Timer period (default 10 ms); each tick makes the changes that are due. */
  tickMs?: number;
}

/** What the generator mutates (SimData implements it). */
export interface ChangeSource {
  /** Makes one change of `kind` in the tenant's data; false when there was nothing to change. */
  change(kind: ChangeKind, tenantKey: string, rnd: () => number): boolean;
  /** Subscribes every app installed in the tenant to what changes of these kinds touch. */
  subscribeAll(tenantKey: string, kinds: readonly ChangeKind[]): void;
}

export class ChangeGenerator {
  /** Changes drawn so far (the rate counts these). */
  drawn = 0;
  /** Changes made (a draw may find nothing to change, e.g. no document the app can see). */
  changes = 0;
  readonly byKind: Record<ChangeKind, number> = { contact: 0, approval: 0, bitable: 0, docs: 0 };
  /** Changes that threw (kept going). */
  errors = 0;
  lastError: unknown;
  /** Resolves when the generator has stopped (total reached, duration over, or stop()). */
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private readonly rnd: () => number;
  private readonly kinds: readonly ChangeKind[];

  constructor(
    private readonly source: ChangeSource,
    readonly opts: GenerateOptions,
    private readonly onStop: () => void,
  ) {
    if (!(opts.perSecond > 0)) throw new Error('simulator: generate() needs perSecond > 0');
    if (opts.tenants.length === 0) throw new Error('simulator: generate() needs at least one tenant');
    this.kinds = opts.kinds && opts.kinds.length > 0 ? opts.kinds : CHANGE_KINDS;
    this.rnd = seededRandom(`generate:${opts.seed ?? 'generate'}`);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  start(): void {
    if (this.opts.autoSubscribe) for (const t of this.opts.tenants) this.source.subscribeAll(t, this.kinds);
    this.startedAt = performance.now();
    this.timer = setInterval(() => this.tick(), this.opts.tickMs ?? 10);
    this.tick();
  }

  private tick(): void {
    if (!this.timer) return;
    const elapsed = performance.now() - this.startedAt;
    if (this.opts.durationMs !== undefined && elapsed >= this.opts.durationMs) {
      void this.stop();
      return;
    }
    let due = Math.floor((elapsed * this.opts.perSecond) / 1000) + 1 - this.drawn;
    if (this.opts.total !== undefined) due = Math.min(due, this.opts.total - this.drawn);
    // After a stall (a busy event loop), catch up by at most one second's worth.
    due = Math.min(due, Math.max(1, Math.ceil(this.opts.perSecond)));
    for (let i = 0; i < due; i += 1) this.one();
    if (this.opts.total !== undefined && this.drawn >= this.opts.total) void this.stop();
  }

  private one(): void {
    const tenant = this.opts.tenants[Math.floor(this.rnd() * this.opts.tenants.length)]!;
    const kind = this.kinds[Math.floor(this.rnd() * this.kinds.length)]!;
    this.drawn += 1;
    try {
      if (this.source.change(kind, tenant, this.rnd)) {
        this.changes += 1;
        this.byKind[kind] += 1;
      }
    } catch (err) {
      this.errors += 1;
      this.lastError = err;
    }
  }

  /** Stops making changes (events already emitted are still delivered: await sim.events.idle()). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.onStop();
    this.resolveDone();
    await this.done;
  }
}
