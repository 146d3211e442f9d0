import { randomUUID } from 'node:crypto';
import { seededRandom } from '../data/support.js';
import { ChangeGenerator, type ChangeSource, type GenerateOptions } from './generator.js';
import { SubscriptionBook } from './subscriptions.js';

/**
 * Change-event delivery, as Lark pushes events to an app's request URL (../shared/lark/events.md
 * §6–7, change-events.md): every event is a v2 (`schema: "2.0"`) or v1 (`event_callback`) body,
 * encrypted and signed for apps with an encrypt key (the same wire format as lifecycle pushes),
 * acknowledged only by an HTTP 200 within 3 s, and otherwise retried after +15 s, +5 min, +1 h
 * and +6 h with the same event id. Events with an order key (approval events: one key per app,
 * tenant and instance) go one at a time: a later event of the key is held until the earlier one
 * is acknowledged (change-events.md §2.1, §8).
 *
 * For tests: pause()/resume() stop and release delivery; idle() waits for quiescence; queued(),
 * deliver() and duplicate() deliver an older event after a newer one and the same event id twice;
 * counters count what happened. For benchmarks: generate() mutates data at a rate (generator.ts).
 */

export interface EventDeliveryOptions {
  /** Waits after a failed attempt (Lark: +15 s, +5 min, +1 h, +6 h: four retries). */
  retryDelaysMs: number[];
  /** Multiplies every retry wait (0.001 turns Lark's hours into seconds). */
  timeScale: number;
  /** How long an attempt waits for the answer (Lark: 3 s). */
  timeoutMs: number;
  /** Attempts in flight at once, over every app. */
  concurrency: number;
  /** Seed of every random choice below (operate_time forms, duplicates). */
  seed: string;
  /**
   * Share of approval_instance events whose `operate_time` is a number instead of a string. Lark
   * sends a string, except for REVERTED (always a number here, as documented); the notes tell
   * receivers to parse both, so by default a seeded half of the others carry a number as well.
   */
  operateTimeNumberShare: number;
  /** Share of acknowledged events Lark sends once more with the same id (seeded; default 0). */
  duplicateShare: number;
  /**
   * Whether title/trash/delete file events reach only owners (change-events.md §3: a manager only
   * receives edit, field and record events). Off: managers get them too.
   */
  ownerOnlyFileEvents: boolean;
  /**
   * Record actions per `drive.file.bitable_record_changed_v1` (a larger write call is split into
   * several events). How Lark splits a batch write is not in the notes (unconfirmed).
   */
  recordActionsPerEvent: number;
  /**
   * get_subscribe for a file without a subscription: `is_subscribe: false` ('false', default) or
   * code 1069605 ('1069605'); the page documents both (unconfirmed which one Lark answers).
   */
  getSubscribeWhenNone: 'false' | '1069605';
  /** Finished (acknowledged or given up) events kept for list()/find(); older ones are forgotten. */
  historyLimit: number;
}

export const defaultEventDeliveryOptions: EventDeliveryOptions = {
  retryDelaysMs: [15_000, 300_000, 3_600_000, 21_600_000],
  timeScale: 1,
  timeoutMs: 3_000,
  concurrency: 16,
  seed: 'sim-events',
  operateTimeNumberShare: 0.5,
  duplicateShare: 0,
  ownerOnlyFileEvents: true,
  recordActionsPerEvent: 100,
  getSubscribeWhenNone: 'false',
  historyLimit: 10_000,
};

export interface PushAttempt {
  /** ms since the epoch (wall clock) */
  at: number;
  /** HTTP status; 0 = no answer (refused, timed out). */
  status: number;
  durationMs: number;
  /** A duplicate or an injected delivery, outside the retry schedule. */
  extra?: boolean;
}

export type SimEventState = 'queued' | 'held' | 'sending' | 'retry_wait' | 'delivered' | 'failed';

export interface SimEvent {
  /** `header.event_id` (v2) or `uuid` (v1). */
  readonly id: string;
  readonly appId: string;
  readonly tenantKey: string;
  /** `header.event_type` (v2) or `event.type` (v1). */
  readonly eventType: string;
  readonly schema: '1.0' | '2.0';
  /** Simulator clock, ms: `header.create_time` (v2) / `ts` (v1). */
  readonly createdAt: number;
  /** The plaintext body as sent (before encryption). */
  readonly body: Record<string, unknown>;
  readonly plaintext: string;
  /**
   * Events of one key are delivered in order, each after the previous one was acknowledged
   * (cleared when a test delivers the event out of band).
   */
  orderKey: string | undefined;
  state: SimEventState;
  attempts: PushAttempt[];
}

export interface EventCounters {
  /** Events created (one per receiving app). */
  emitted: number;
  /** Events acknowledged with HTTP 200. */
  delivered: number;
  /** HTTP attempts, first tries and retries (duplicates and injected deliveries included). */
  attempts: number;
  /** Retry attempts (after a failed one). */
  retried: number;
  /** Events that had to wait behind an unacknowledged earlier event of their order key. */
  held: number;
  /** Events given up after the last retry failed. */
  failed: number;
  /** Extra sends of an event already sent (duplicate(), duplicateShare). */
  duplicates: number;
}

export interface EmitOptions {
  /** Default: a random 32-hex id. */
  id?: string;
  /** Default: the simulator's clock now. */
  createdAt?: number;
  orderKey?: string;
  /** v2: more `header` fields (the Drive file events' `resource_id`, `user_list`). */
  header?: Record<string, unknown>;
}

/** What delivery needs from the simulator (LarkSimulator implements it). */
export interface EventTransport {
  now(): number;
  getApp(appId: string): { verificationToken: string; eventUrl?: string };
  /** One HTTP attempt: the app's wire format (encrypted and signed when it has a key). */
  transmit(appId: string, id: string, plaintext: string, opts: { timeoutMs: number }): Promise<{ status: number; durationMs: number }>;
}

const newId = () => randomUUID().replace(/-/g, '');

interface Waiter {
  resolve: () => void;
}

export class SimEvents {
  readonly options: EventDeliveryOptions;
  readonly counters: EventCounters = { emitted: 0, delivered: 0, attempts: 0, retried: 0, held: 0, failed: 0, duplicates: 0 };
  /** Approval and file subscriptions made through the subscribe APIs (or directly by tests). */
  readonly subscriptions = new SubscriptionBook();
  private paused = false;
  private closed = false;
  private readonly ready: SimEvent[] = [];
  private readonly orderQueues = new Map<string, SimEvent[]>();
  private readonly live = new Map<string, SimEvent>();
  private readonly history = new Map<string, SimEvent>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private active = 0;
  private readonly extraSends = new Set<Promise<unknown>>();
  private readonly waiters: Waiter[] = [];
  private draw: () => number;
  private source: ChangeSource | undefined;
  private readonly generators = new Set<ChangeGenerator>();

  constructor(
    private readonly transport: EventTransport,
    options: Partial<EventDeliveryOptions> = {},
  ) {
    this.options = { ...defaultEventDeliveryOptions, ...options };
    this.draw = seededRandom(`events:${this.options.seed}`);
  }

  /** Changes options of running delivery (later attempts and events use them). */
  setOptions(patch: Partial<EventDeliveryOptions>): void {
    Object.assign(this.options, patch);
    if (patch.seed !== undefined) this.draw = seededRandom(`events:${patch.seed}`);
  }

  /** A seeded draw in [0, 1) shared by the payload builders (operate_time forms). */
  random(): number {
    return this.draw();
  }

  // ---------------------------------------------------------------- emitting

  /** Queues a v2 event (`schema: "2.0"`) for the app. */
  emitV2(appId: string, tenantKey: string, eventType: string, event: Record<string, unknown>, opts: EmitOptions = {}): SimEvent {
    const id = opts.id ?? newId();
    const createdAt = opts.createdAt ?? this.transport.now();
    const body = {
      schema: '2.0',
      header: {
        event_id: id,
        event_type: eventType,
        create_time: String(createdAt),
        token: this.transport.getApp(appId).verificationToken,
        app_id: appId,
        tenant_key: tenantKey,
        ...opts.header,
      },
      event,
    };
    return this.enqueue({ id, appId, tenantKey, eventType, schema: '2.0', createdAt, body, orderKey: opts.orderKey });
  }

  /** Queues a v1 event (`type: "event_callback"`); `event.type` names it. */
  emitV1(appId: string, tenantKey: string, event: Record<string, unknown>, opts: EmitOptions = {}): SimEvent {
    const id = opts.id ?? newId();
    const createdAt = opts.createdAt ?? this.transport.now();
    const body = {
      ts: (createdAt / 1000).toFixed(6),
      uuid: id,
      token: this.transport.getApp(appId).verificationToken,
      type: 'event_callback',
      event,
    };
    return this.enqueue({ id, appId, tenantKey, eventType: String(event.type ?? ''), schema: '1.0', createdAt, body, orderKey: opts.orderKey });
  }

  private enqueue(e: Omit<SimEvent, 'state' | 'attempts' | 'plaintext'>): SimEvent {
    const ev: SimEvent = { ...e, plaintext: JSON.stringify(e.body), state: 'queued', attempts: [] };
    this.counters.emitted += 1;
    this.live.set(ev.id, ev);
    if (ev.orderKey !== undefined) {
      let q = this.orderQueues.get(ev.orderKey);
      if (!q) this.orderQueues.set(ev.orderKey, (q = []));
      q.push(ev);
      if (q.length > 1) {
        ev.state = 'held';
        this.counters.held += 1;
        return ev;
      }
    }
    this.ready.push(ev);
    this.pump();
    return ev;
  }

  // ---------------------------------------------------------------- the delivery loop

  private pump(): void {
    while (!this.paused && !this.closed && this.active < this.options.concurrency && this.ready.length > 0) {
      const ev = this.ready.shift()!;
      void this.attempt(ev);
    }
    this.checkIdle();
  }

  private async attempt(ev: SimEvent): Promise<void> {
    this.active += 1;
    ev.state = 'sending';
    if (ev.attempts.some((a) => !a.extra)) this.counters.retried += 1;
    const result = await this.send(ev, false);
    this.active -= 1;
    if (result.status === 200) {
      this.finish(ev, 'delivered');
      if (this.options.duplicateShare > 0 && this.draw() < this.options.duplicateShare) void this.duplicate(ev.id);
    } else if (!this.closed && ev.attempts.filter((a) => !a.extra).length <= this.options.retryDelaysMs.length) {
      ev.state = 'retry_wait';
      const wait = (this.options.retryDelaysMs[ev.attempts.filter((a) => !a.extra).length - 1] ?? 0) * this.options.timeScale;
      const timer = setTimeout(() => {
        this.timers.delete(ev.id);
        if (ev.state !== 'retry_wait') return;
        ev.state = 'queued';
        this.ready.push(ev);
        this.pump();
      }, wait);
      this.timers.set(ev.id, timer);
    } else {
      // Lark's behaviour after the last retry of an ordered event is not in the notes: the next
      // event of the key goes ahead (unconfirmed).
      this.finish(ev, 'failed');
    }
    this.pump();
  }

  private async send(ev: SimEvent, extra: boolean): Promise<PushAttempt> {
    this.counters.attempts += 1;
    const at = Date.now();
    const res = await this.transport.transmit(ev.appId, ev.id, ev.plaintext, { timeoutMs: this.options.timeoutMs });
    const attempt: PushAttempt = { at, status: res.status, durationMs: res.durationMs, ...(extra ? { extra: true } : {}) };
    ev.attempts.push(attempt);
    return attempt;
  }

  private finish(ev: SimEvent, state: 'delivered' | 'failed'): void {
    const wasFinal = ev.state === 'delivered' || ev.state === 'failed';
    ev.state = state;
    if (wasFinal) return;
    if (state === 'delivered') this.counters.delivered += 1;
    else this.counters.failed += 1;
    this.live.delete(ev.id);
    this.history.set(ev.id, ev);
    while (this.history.size > this.options.historyLimit) {
      const oldest = this.history.keys().next().value as string;
      this.history.delete(oldest);
    }
    this.releaseNext(ev);
  }

  /** Takes the event out of its order queue; when it was the head, the next one may go. */
  private releaseNext(ev: SimEvent): void {
    if (ev.orderKey === undefined) return;
    const q = this.orderQueues.get(ev.orderKey);
    if (!q) return;
    const wasHead = q[0] === ev;
    const i = q.indexOf(ev);
    if (i >= 0) q.splice(i, 1);
    if (q.length === 0) {
      this.orderQueues.delete(ev.orderKey);
      return;
    }
    if (wasHead && q[0]!.state === 'held') {
      q[0]!.state = 'queued';
      this.ready.push(q[0]!);
    }
  }

  // ---------------------------------------------------------------- test controls

  /** Stops sending: new and retried events wait (attempts in flight finish). */
  pause(): void {
    this.paused = true;
  }

  /**
   * Sends again. `order` rearranges the events waiting to be sent first: 'reverse' sends the
   * newest first (out of order), 'fifo' (default) as emitted; a function sorts them.
   */
  resume(opts: { order?: 'fifo' | 'reverse' | ((a: SimEvent, b: SimEvent) => number) } = {}): void {
    if (opts.order === 'reverse') this.ready.reverse();
    else if (typeof opts.order === 'function') this.ready.sort(opts.order);
    this.paused = false;
    this.pump();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Events waiting to be sent (paused, or over the concurrency), oldest first; optionally only some. */
  queued(filter: EventFilter = {}): SimEvent[] {
    return this.ready.filter((e) => matches(e, filter));
  }

  /** Events held behind an unacknowledged earlier event of their order key. */
  heldEvents(filter: EventFilter = {}): SimEvent[] {
    return [...this.orderQueues.values()].flatMap((q) => q.filter((e) => e.state === 'held' && matches(e, filter)));
  }

  /**
   * Delivers one event now, whatever its place: a queued or held event leaves its queue and is
   * sent at once, also while paused and ahead of its order key (out-of-order injection). A 200
   * acknowledges it; otherwise it goes on with the retry schedule. An event already delivered is
   * sent again as a duplicate.
   */
  async deliver(id: string): Promise<PushAttempt> {
    const ev = this.find(id);
    if (!ev) throw new Error(`simulator: no event ${id}`);
    if (ev.state === 'delivered' || ev.state === 'failed') return this.duplicate(id);
    if (ev.state === 'sending') throw new Error(`simulator: event ${id} is being sent`);
    const i = this.ready.indexOf(ev);
    if (i >= 0) this.ready.splice(i, 1);
    const timer = this.timers.get(id);
    if (timer) {
      clearTimeout(timer);
      this.timers.delete(id);
    }
    // Out of band: it leaves its order queue, so neither waits for the other any more.
    if (ev.orderKey !== undefined) {
      const q = this.orderQueues.get(ev.orderKey);
      if (q && q[0] !== ev) {
        q.splice(q.indexOf(ev), 1);
        ev.orderKey = undefined;
      }
    }
    return this.track(this.sendOne(ev));
  }

  private async sendOne(ev: SimEvent): Promise<PushAttempt> {
    const before = ev.attempts.length;
    await this.attempt(ev);
    return ev.attempts[before]!;
  }

  /** Sends an event once more with the same id (a fresh signature), outside the retry schedule. */
  async duplicate(id: string): Promise<PushAttempt> {
    const ev = this.find(id);
    if (!ev) throw new Error(`simulator: no event ${id}`);
    this.counters.duplicates += 1;
    return this.track(this.send(ev, true));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.extraSends.add(p);
    void p.finally(() => {
      this.extraSends.delete(p);
      this.checkIdle();
    });
    return p;
  }

  /** An event by id: waiting, in flight, or among the last `historyLimit` finished ones. */
  find(id: string): SimEvent | undefined {
    return this.live.get(id) ?? this.history.get(id);
  }

  /** Known events (waiting, in flight, and the last finished ones), in emission order per group. */
  list(filter: EventFilter = {}): SimEvent[] {
    return [...this.history.values(), ...this.live.values()]
      .filter((e) => matches(e, filter))
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Gauges: events waiting to be sent, in flight, waiting for a retry, held. */
  gauges(): { queued: number; sending: number; retryWait: number; held: number } {
    return { queued: this.ready.length, sending: this.active, retryWait: this.timers.size, held: this.heldEvents().length };
  }

  /** Sets the counters to zero (the events stay). */
  resetCounters(): void {
    for (const k of Object.keys(this.counters) as Array<keyof EventCounters>) this.counters[k] = 0;
  }

  // ---------------------------------------------------------------- quiescence

  private quiet(): boolean {
    return this.active === 0 && this.timers.size === 0 && this.extraSends.size === 0 && (this.paused || this.ready.length === 0);
  }

  private checkIdle(): void {
    if (!this.quiet()) return;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /**
   * Resolves when nothing more happens by itself: no attempt in flight, no retry waiting and,
   * unless paused, nothing queued. Retries wait their (scaled) schedule, so tests shorten it with
   * `retryDelaysMs` or `timeScale`. Rejects after `timeoutMs` (default 20 s) saying what is left.
   */
  idle(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.quiet()) return Promise.resolve();
    const timeoutMs = opts.timeoutMs ?? 20_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`simulator: events not idle after ${timeoutMs} ms: ${JSON.stringify(this.gauges())}`));
      }, timeoutMs);
      const w: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(w);
    });
  }

  // ---------------------------------------------------------------- the generator

  /** Called by SimData: what generate() mutates. */
  useChangeSource(source: ChangeSource): void {
    this.source = source;
  }

  /**
   * Changes data at a steady rate and lets the changes emit their events, e.g.
   * `sim.events.generate({ perSecond: 200, tenants, kinds: ['contact', 'bitable'] })`.
   * Needs a SimData on this simulator. Stop it with the handle's stop().
   */
  generate(opts: GenerateOptions): ChangeGenerator {
    if (!this.source) throw new Error('simulator: generate() needs a SimData attached to this simulator');
    const gen = new ChangeGenerator(this.source, opts, () => this.generators.delete(gen));
    this.generators.add(gen);
    gen.start();
    return gen;
  }

  /** Stops generators and retries and waits for attempts in flight (the simulator is stopping). */
  async close(): Promise<void> {
    this.closed = true;
    for (const g of [...this.generators]) await g.stop();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.extraSends]);
    while (this.active > 0) await new Promise((r) => setTimeout(r, 10));
    this.checkIdle();
  }
}

export interface EventFilter {
  appId?: string;
  tenantKey?: string;
  eventType?: string;
  state?: SimEventState;
}

function matches(e: SimEvent, f: EventFilter): boolean {
  return (
    (f.appId === undefined || e.appId === f.appId) &&
    (f.tenantKey === undefined || e.tenantKey === f.tenantKey) &&
    (f.eventType === undefined || e.eventType === f.eventType) &&
    (f.state === undefined || e.state === f.state)
  );
}
