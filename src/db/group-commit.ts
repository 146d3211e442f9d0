export interface GroupCommitOptions {
  /** Items written by one transaction at most. */
  maxBatch: number;
  /** Transactions in flight at once; the rest of the items wait and go together in the next. */
  maxInFlight: number;
}

interface Waiting<T, R> {
  item: T;
  resolve: (r: R) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: items submitted while earlier transactions are in flight wait and are written
 * together by the next one, so N concurrent writers pay for one commit (one WAL flush) instead of
 * N. Nothing waits on a timer: an idle committer writes a lone item at once, so latency at low
 * load is one transaction, and batches grow only as load does. Every caller's promise settles
 * after the transaction holding its item has committed (or failed).
 *
 * `writeBatch` must answer one result per item, in order. When a batch fails, each of its items
 * is written again on its own, so one bad item fails only its own caller.
 */
export class GroupCommitter<T, R> {
  private readonly queue: Array<Waiting<T, R>> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly writeBatch: (items: T[]) => Promise<R[]>,
    private readonly options: GroupCommitOptions,
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  /** Items waiting for a transaction (for metrics and tests). */
  get waiting(): number {
    return this.queue.length;
  }

  private pump(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.queue.length === 0) return;
    // Taken after the current turn of the event loop: requests whose bytes have already arrived
    // are parsed in this turn and join the batch. That costs no timer and under load makes the
    // batches several times larger.
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.launchWhileRoom();
    });
  }

  private launchWhileRoom(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      this.inFlight += 1;
      void this.write(this.queue.splice(0, this.options.maxBatch));
    }
  }

  private async write(batch: Array<Waiting<T, R>>): Promise<void> {
    let results: R[] | undefined;
    let failure: unknown;
    try {
      results = await this.writeBatch(batch.map((w) => w.item));
    } catch (err) {
      failure = err;
    }
    this.inFlight -= 1;
    // The items that queued meanwhile go to the database before this batch's callers hear back:
    // answering them (an HTTP response each) takes a while, and the database would sit idle.
    this.launchWhileRoom();
    if (results) {
      batch.forEach((w, i) => w.resolve(results[i] as R));
      return;
    }
    if (batch.length === 1) {
      batch[0]!.reject(failure);
      return;
    }
    await Promise.all(
      batch.map(async (w) => {
        try {
          const [r] = await this.writeBatch([w.item]);
          w.resolve(r as R);
        } catch (one) {
          w.reject(one);
        }
      }),
    );
  }
}
