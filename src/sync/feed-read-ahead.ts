/**
 * Read-ahead for consumers walking the records feed. A consumer that follows `nextCursor` asks
 * for the next page only once it has received and parsed this one, so without read-ahead the
 * database idles while the page travels and is parsed, and the consumer idles while the next
 * query runs. When a page is full (there is a next page), the next page is queried at once and
 * kept here, under the exact request that will ask for it, for a short while.
 *
 * A page read ahead is the answer the feed gave at the moment it was read: its rows all lie below
 * that moment's horizon (records.service.ts), and every transaction still to commit then has an id
 * at or above it, so serving it a moment later skips nothing; rows written since come on later
 * pages, as they would for a consumer that had asked at that moment. `maxAgeMs` bounds how late
 * that moment may be. A page is served once; a consumer that stops walking leaves one query wasted.
 */
export interface ReadAheadOptions {
  /** pages kept at once (about 1 MB each at limit=1000); when full, nothing more is read ahead */
  maxPages: number;
  /** a page older than this is dropped and read again */
  maxAgeMs: number;
}

interface Entry<T> {
  at: number;
  page: Promise<T | undefined>;
}

export class FeedReadAhead<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(private readonly opts: ReadAheadOptions = { maxPages: 8, maxAgeMs: 1_000 }) {}

  /** The page read ahead for `key` if it is still fresh; it is then no longer kept. */
  take(key: string): Promise<T | undefined> | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    return performance.now() - e.at <= this.opts.maxAgeMs ? e.page : undefined;
  }

  /** Reads the page for `key` now, in the background; a failed read is simply not kept. */
  start(key: string, read: () => Promise<T>): void {
    const now = performance.now();
    for (const [k, e] of this.entries) if (now - e.at > this.opts.maxAgeMs) this.entries.delete(k);
    if (this.entries.has(key) || this.entries.size >= this.opts.maxPages) return;
    // The request that takes it reads again on failure, and reports that error if it recurs.
    this.entries.set(key, { at: now, page: read().catch(() => undefined) });
  }
}
