/**
 * The application side of the realtime benchmark: what an application built on larksync does
 * with its webhooks and records feed, instrumented to time each change Lark pushed.
 *
 * - A webhook receiver (node:http, Standard Webhooks signatures verified with the
 *   `standardwebhooks` package as a receiver would): each `records.changed` is timed on receipt
 *   and makes the consumer read that feed.
 * - A records-feed reader per (tenant, stream): `GET /api/v1/tenants/{t}/streams/{s}/records`
 *   from the cursor it keeps, on each webhook and, for feeds with changes not seen yet, every
 *   `pollMs` (so visibility is measured whether or not a webhook comes).
 * - Each pushed change (from the simulator: which row must show what) is "visible" at the end of
 *   the first read that returned the row showing it (or a later change of the same row), and
 *   "announced" at the receipt of the first webhook whose range reaches that row's position.
 *
 * A row's exact feed position is not in the API's answer; the page's resume cursor (the position
 * of its last row) is an upper bound of it, so a webhook reaching that bound certainly covered the
 * row: the webhook times are never understated.
 */
import http from 'node:http';
import { Webhook } from 'standardwebhooks';
import type { Expect, Push } from './realtime-sim-child.js';

interface Position {
  xid: bigint;
  seq: bigint;
}

/** The feed cursor's text (records.service.ts): base64url of `v2:<xid>.<seq>`. */
export function decodePosition(cursor: string): Position {
  const m = /^v2:(\d+)\.(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw new Error(`not a feed cursor: ${cursor}`);
  return { xid: BigInt(m[1]!), seq: BigInt(m[2]!) };
}
const atOrAfter = (a: Position, b: Position) => a.xid > b.xid || (a.xid === b.xid && a.seq >= b.seq);

interface RecordView {
  key: string;
  deletedAt: string | null;
  data: Record<string, unknown>;
}

/** One change a push announced, and when the consumer saw it. */
export interface TrackedChange {
  push: Push;
  stream: string;
  key: string;
  expect: Expect;
  visibleAt?: number;
  /** upper bound of the row's feed position when first seen */
  pos?: Position;
  hookAt?: number;
  /** no webhook after the push reached the row, but one received before it did (see finish()) */
  hookedBeforePush?: boolean;
}

interface Observation {
  at: number;
  pos: Position;
  row: RecordView;
}

interface Feed {
  tenant: string;
  stream: string;
  cursor: string | undefined;
  reading: boolean;
  again: boolean;
  unresolved: number;
  hooks: Array<{ at: number; upTo: Position }>;
}

const getPath = (data: Record<string, unknown>, path: string[]): unknown =>
  path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), data);

export function shows(row: RecordView, expect: Expect): boolean {
  switch (expect.kind) {
    case 'present':
      return row.deletedAt === null;
    case 'deleted':
      // A member who left may be kept as resigned rather than deleted: either shows the change.
      return row.deletedAt !== null || row.data.is_resigned === true;
    case 'value':
      return row.deletedAt === null && JSON.stringify(getPath(row.data, expect.path)) === JSON.stringify(expect.value);
  }
}

export interface ConsumerStats {
  webhooks: number;
  badSignatures: number;
  /** deliveries whose webhook-id had been received before */
  duplicateIds: number;
  reads: number;
  readErrors: number;
  lastReadError?: string;
  /** mean time between two reads of a feed with changes outstanding (the visibility resolution) */
  meanPollGapMs: number | null;
}

export class Consumer {
  private server: http.Server | undefined;
  private readonly feeds = new Map<string, Feed>();
  /** feed/key -> its changes in push order */
  private readonly changes = new Map<string, TrackedChange[]>();
  private readonly last = new Map<string, Observation>();
  readonly all: TrackedChange[] = [];
  private readonly ids = new Set<string>();
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private frozen = false;
  private verifier: Webhook | undefined;
  private readonly pollGaps: number[] = [];
  private readonly lastPoll = new Map<string, number>();
  readonly stats: ConsumerStats = { webhooks: 0, badSignatures: 0, duplicateIds: 0, reads: 0, readErrors: 0, meanPollGapMs: null };

  constructor(
    private readonly api: { url: string; token: string },
    private readonly opts: { pollMs: number; concurrency: number },
  ) {}

  /** Listens on 127.0.0.1; returns the receiver's URL. */
  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = Date.now();
        const body = Buffer.concat(chunks).toString('utf8');
        res.writeHead(200).end();
        this.onWebhook(at, body, req.headers as Record<string, string>);
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    if (!addr || typeof addr === 'string') throw new Error('receiver has no port');
    return `http://127.0.0.1:${addr.port}/hooks`;
  }

  useSecret(secret: string): void {
    this.verifier = new Webhook(secret);
  }

  async stop(): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private feed(tenant: string, stream: string): Feed {
    const k = `${tenant}/${stream}`;
    let f = this.feeds.get(k);
    if (!f) this.feeds.set(k, (f = { tenant, stream, cursor: undefined, reading: false, again: false, unresolved: 0, hooks: [] }));
    return f;
  }

  private onWebhook(at: number, body: string, headers: Record<string, string>): void {
    if (this.frozen) return;
    this.stats.webhooks += 1;
    try {
      this.verifier?.verify(body, headers);
    } catch {
      this.stats.badSignatures += 1;
      return;
    }
    const id = headers['webhook-id'] ?? '';
    if (this.ids.has(id)) this.stats.duplicateIds += 1;
    this.ids.add(id);
    const msg = JSON.parse(body) as { type: string; data: { tenantKey: string; stream: string; cursor: { after: string; upTo: string } } };
    if (msg.type !== 'records.changed') return;
    const f = this.feed(msg.data.tenantKey, msg.data.stream);
    f.hooks.push({ at, upTo: decodePosition(msg.data.cursor.upTo) });
    this.kick(f);
  }

  /** Reads every feed to its end once (before the changes start: later reads see only them). */
  async catchUp(tenants: string[], streams: string[]): Promise<void> {
    await Promise.all(tenants.flatMap((t) => streams.map((s) => this.read(this.feed(t, s)))));
  }

  /** Changes pushed by the simulator. */
  addPushes(pushes: Push[]): void {
    for (const push of pushes) {
      for (const c of push.changes) {
        const change: TrackedChange = { push, stream: c.stream, key: c.key, expect: c.expect };
        const k = `${push.tenant}/${c.stream}/${c.key}`;
        let list = this.changes.get(k);
        if (!list) this.changes.set(k, (list = []));
        list.push(change);
        this.all.push(change);
        const f = this.feed(push.tenant, c.stream);
        f.unresolved += 1;
        // Read before the push was known here (a webhook came first).
        const seen = this.last.get(k);
        if (seen && seen.at >= push.at) this.match(f, k, seen);
      }
    }
  }

  startPolling(): void {
    this.pollTimer = setInterval(() => {
      for (const f of this.feeds.values()) if (f.unresolved > 0) this.kick(f);
    }, this.opts.pollMs);
  }

  private kick(f: Feed): void {
    if (this.frozen) return;
    if (f.reading) {
      f.again = true;
      return;
    }
    void this.read(f);
  }

  private async slot(): Promise<void> {
    if (this.active < this.opts.concurrency) {
      this.active += 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active -= 1;
  }

  private async read(f: Feed): Promise<void> {
    f.reading = true;
    try {
      do {
        f.again = false;
        const k = `${f.tenant}/${f.stream}`;
        const now = Date.now();
        const prev = this.lastPoll.get(k);
        if (prev !== undefined && f.unresolved > 0) this.pollGaps.push(now - prev);
        this.lastPoll.set(k, now);
        for (;;) {
          await this.slot();
          let page: { records: RecordView[]; nextCursor: string | null; resumeCursor: string };
          try {
            const q = new URLSearchParams({ limit: '100', ...(f.cursor ? { cursor: f.cursor } : {}) });
            const res = await fetch(`${this.api.url}/api/v1/tenants/${f.tenant}/streams/${f.stream}/records?${q}`, {
              headers: { authorization: `Bearer ${this.api.token}` },
            });
            this.stats.reads += 1;
            if (res.status !== 200) {
              this.stats.readErrors += 1;
              this.stats.lastReadError = `HTTP ${res.status}`;
              await res.body?.cancel();
              break;
            }
            page = (await res.json()) as typeof page;
          } finally {
            this.release();
          }
          const at = Date.now();
          if (this.frozen) break;
          const pos = decodePosition(page.resumeCursor);
          for (const row of page.records) {
            const key = `${f.tenant}/${f.stream}/${row.key}`;
            const obs = { at, pos, row };
            this.last.set(key, obs);
            this.match(f, key, obs);
          }
          f.cursor = page.resumeCursor;
          if (!page.nextCursor) break;
        }
      } while (f.again);
    } catch (err) {
      this.stats.readErrors += 1;
      this.stats.lastReadError = (err as Error).message;
    } finally {
      f.reading = false;
    }
  }

  /**
   * The row shows change i of its key (or a later one): every earlier unresolved change of the key
   * is visible now too. The earliest matching change is taken, so a value that repeats is never
   * credited to a later push than it may belong to.
   */
  private match(f: Feed, key: string, obs: Observation): void {
    const list = this.changes.get(key);
    if (!list) return;
    const first = list.findIndex((c) => c.visibleAt === undefined);
    if (first < 0) return;
    let hit = -1;
    for (let i = first; i < list.length; i += 1) {
      if (list[i]!.push.at <= obs.at && shows(obs.row, list[i]!.expect)) {
        hit = i;
        break;
      }
    }
    for (let i = first; i <= hit; i += 1) {
      const c = list[i]!;
      if (c.visibleAt !== undefined) continue;
      c.visibleAt = Math.max(obs.at, c.push.at);
      c.pos = obs.pos;
      f.unresolved -= 1;
    }
  }

  unresolved(): number {
    let n = 0;
    for (const f of this.feeds.values()) n += f.unresolved;
    return n;
  }

  /** Changes still to show, a deletion of a row the feed never held (see lost()) left out. */
  awaited(): number {
    let n = 0;
    for (const [k, list] of this.changes) {
      if (!this.last.has(k) && list.at(-1)!.expect.kind === 'deleted') continue;
      n += list.filter((c) => c.visibleAt === undefined).length;
    }
    return n;
  }

  /**
   * Webhook times, once the run is over: the first webhook of the feed reaching the row's position.
   * From here on nothing is read or matched (the baseline's syncs that follow would apply changes).
   */
  finish(): void {
    this.frozen = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    for (const c of this.all) {
      if (!c.pos) continue;
      const f = this.feed(c.push.tenant, c.stream);
      const hook = f.hooks.find((h) => h.at >= c.push.at && atOrAfter(h.upTo, c.pos!));
      c.hookAt = hook?.at;
      // A change an earlier re-read of the object already read (and announced) before Lark pushed
      // it: its own re-read finds nothing new, so no later webhook reaches it, and none has to.
      if (!hook) c.hookedBeforePush = f.hooks.some((h) => h.at < c.push.at && atOrAfter(h.upTo, c.pos!));
    }
    this.stats.meanPollGapMs = this.pollGaps.length > 0 ? this.pollGaps.reduce((a, b) => a + b, 0) / this.pollGaps.length : null;
  }

  /**
   * Every row a push touched, as the feed last showed it, against the last change pushed for it:
   * rows that do not show it (or were never read) were lost.
   */
  lost(): Array<{ tenant: string; stream: string; key: string; expect: Expect; shown: unknown }> {
    const out: Array<{ tenant: string; stream: string; key: string; expect: Expect; shown: unknown }> = [];
    for (const [k, list] of this.changes) {
      const lastChange = list.at(-1)!;
      const obs = this.last.get(k);
      // A row created and deleted again before larksync read it never reaches the feed: absent is right.
      if (!obs && lastChange.expect.kind === 'deleted') continue;
      if (!obs || !shows(obs.row, lastChange.expect)) {
        out.push({
          tenant: lastChange.push.tenant,
          stream: lastChange.stream,
          key: lastChange.key,
          expect: lastChange.expect,
          shown: obs ? { deletedAt: obs.row.deletedAt, value: lastChange.expect.kind === 'value' ? getPath(obs.row.data, lastChange.expect.path) : undefined } : 'never read',
        });
      }
    }
    return out;
  }

  rowsTouched(): number {
    return this.changes.size;
  }
}
