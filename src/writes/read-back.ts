/**
 * The read-back of a Base's answered write calls into base_records, beside the write calls: while
 * the next call is in flight, the rows of the calls before it are read (batch_get, its own rate
 * limit) and committed, in the order the calls were answered. One call's rows are read while the
 * previous call's are being committed. When each step may go is the applier's to say (the gate:
 * write-applier.ts Lane).
 *
 * A write is reported finished once Lark holds its records; its rows reach base_records (and the
 * records feed) when its calls are read back, counted meanwhile as the write's readBackPending.
 */
export interface ReadBackItem {
  batchId: string;
  tableId: string;
  op: 'create' | 'update' | 'delete';
  identityUser: string | null;
  tenantKey: string;
  /** the records the call wrote (or deleted) */
  recordIds: string[];
  writeIds: string[];
}

export class ReadBack<Rows> {
  private readonly queue: ReadBackItem[] = [];
  private closed = false;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    /** Reads an item's rows (a failure is the reader's to swallow: it only delays them to the next sync). */
    private readonly read: (item: ReadBackItem) => Promise<Rows>,
    /** Commits them with the call's end; throws only for database failures. */
    private readonly commit: (item: ReadBackItem, rows: Rows) => Promise<void>,
    /** Awaited before each read and each commit: the write calls go first (the applier's lane). */
    private readonly gate: () => Promise<void> = () => Promise.resolve(),
  ) {}

  /** An item is being read or committed. */
  private busy = false;
  private readonly drainedWaiters = new Set<() => void>();

  /** Nothing queued and nothing being read or committed. */
  get drained(): boolean {
    return this.queue.length === 0 && !this.busy;
  }

  /** Resolves once drained (or the reader ends), or after `ms`, whichever comes first. */
  whenDrained(ms: number): Promise<void> {
    if (this.drained) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.drainedWaiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.drainedWaiters.add(done);
    });
  }

  private wakeDrained(): void {
    for (const w of [...this.drainedWaiters]) w();
  }

  /** Calls not read back yet (their writes stay open for the next job). */
  get left(): number {
    return this.queue.length;
  }

  push(item: ReadBackItem): void {
    this.queue.push(item);
    this.poke();
  }

  /** No more items will come: the reader ends once the queue is empty. */
  close(): void {
    this.closed = true;
    this.poke();
  }

  /** Stop after the item in hand (the rest stays for the next job). */
  stop(): void {
    this.stopped = true;
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async next(deadline: number): Promise<ReadBackItem | undefined> {
    for (;;) {
      if (this.stopped || Date.now() > deadline) return undefined;
      const item = this.queue.shift();
      if (item) return item;
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        // Wakes at the deadline even if nothing arrives.
        setTimeout(resolve, Math.max(0, deadline - Date.now()) + 5).unref?.();
      });
    }
  }

  /** Reads and commits until closed and empty, stopped, or past `deadline`. */
  async run(deadline: number): Promise<void> {
    try {
      await this.loop(deadline);
    } finally {
      this.busy = false;
      this.wakeDrained();
    }
  }

  private async loop(deadline: number): Promise<void> {
    let current: { item: ReadBackItem; rows: Promise<Rows> } | undefined;
    for (;;) {
      if (!current) {
        this.busy = false;
        if (this.drained) this.wakeDrained();
        const item = await this.next(deadline);
        if (!item) return;
        this.busy = true;
        await this.gate();
        current = { item, rows: this.read(item) };
      }
      const rows = await current.rows;
      await this.gate();
      // The next call's rows are read while this one's are committed.
      const after = !this.stopped && Date.now() <= deadline ? this.queue.shift() : undefined;
      const next = after ? { item: after, rows: this.read(after) } : undefined;
      try {
        await this.commit(current.item, rows);
      } catch (err) {
        await next?.rows.catch(() => undefined);
        throw err;
      }
      current = next;
    }
  }
}
