import type { PageResult, PhaseState } from '../sync-module.js';
import type { ReadyPage } from './prepare-page.js';

type Read = { ok: true; ready: ReadyPage } | { ok: false; error: unknown };

/**
 * A chain of page reads, each from the state the previous one returned, running ahead of the
 * committer: at most `depth` pages read and not yet taken, plus the one being fetched. The chain
 * goes on while `readOn` says the page after the one just fetched may be read before it is
 * committed, and otherwise stops after that page; the committer starts it again from the
 * committed state. The next fetch goes out before a page is hashed and serialised, so that work
 * overlaps the wait for the next page (and the rate limit's pace is not stretched by it). A failed
 * read is handed to the committer in its place, after the pages before it.
 */
export class PageReader {
  private readonly pages: Read[] = [];
  private running = false;
  private stopped = false;
  private wakeTaker: (() => void) | undefined;
  private wakeReader: (() => void) | undefined;

  constructor(
    private readonly fetch: (state: PhaseState) => Promise<PageResult<PhaseState>>,
    private readonly prepare: (page: PageResult<PhaseState>) => Promise<ReadyPage>,
    private readonly readOn: (page: PageResult<PhaseState>) => boolean,
    private readonly depth: number,
  ) {}

  /** Nothing being read and nothing left to take. */
  get idle(): boolean {
    return !this.running && this.pages.length === 0;
  }

  start(from: PhaseState): void {
    this.running = true;
    void this.run(from);
  }

  /** The next page in order; undefined once the chain has stopped with nothing left. */
  async take(): Promise<ReadyPage | undefined> {
    for (;;) {
      const next = this.pages.shift();
      if (next) {
        this.wake('reader');
        if (!next.ok) throw next.error;
        return next.ready;
      }
      if (!this.running) return undefined;
      await new Promise<void>((resolve) => (this.wakeTaker = resolve));
    }
  }

  /** No further read starts; one in flight finishes unseen. */
  stop(): void {
    this.stopped = true;
    this.pages.length = 0;
    this.wake('reader');
  }

  private async run(from: PhaseState): Promise<void> {
    let fetching: Promise<PageResult<PhaseState>> | undefined = this.fetch(from);
    try {
      while (fetching) {
        const page: PageResult<PhaseState> = await fetching;
        fetching = undefined;
        if (this.stopped) return;
        const onward = this.readOn(page);
        if (onward && this.pages.length < this.depth) fetching = this.fetch(page.state);
        let ready: ReadyPage;
        try {
          ready = await this.prepare(page);
        } catch (error) {
          // Nothing after a page that cannot be stored is used.
          void fetching?.catch(() => undefined);
          throw error;
        }
        this.pages.push({ ok: true, ready });
        this.wake('taker');
        if (!onward || fetching) continue;
        while (this.pages.length >= this.depth && !this.stopped) await new Promise<void>((resolve) => (this.wakeReader = resolve));
        // Asked again after the wait: the slice's time may have run out meanwhile.
        if (!this.stopped && this.readOn(page)) fetching = this.fetch(page.state);
      }
    } catch (error) {
      if (!this.stopped) this.pages.push({ ok: false, error });
    } finally {
      this.running = false;
      this.wake('taker');
    }
  }

  private wake(who: 'taker' | 'reader'): void {
    const wake = who === 'taker' ? this.wakeTaker : this.wakeReader;
    if (who === 'taker') this.wakeTaker = undefined;
    else this.wakeReader = undefined;
    wake?.();
  }
}
