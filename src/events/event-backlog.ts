import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

/**
 * Whether change events wait to be handled, for a sync that should let them go first. A shard's
 * `awake` flag is set by the batch that stores its events and cleared when its drain starts, so
 * "some shard awake" means events stored and not yet taken up (by any replica). The answer is
 * kept for `cacheMs`: a sync asks before every page, and most pages need no fresh answer.
 */
export class EventBacklog {
  private known: { at: number; waiting: boolean } | undefined;
  private asking: Promise<boolean> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly cacheMs = 250,
  ) {}

  async waiting(): Promise<boolean> {
    const now = Date.now();
    if (this.known && now - this.known.at < this.cacheMs) return this.known.waiting;
    this.asking ??= sql<{ waiting: boolean }>`select exists (select 1 from lark_event_shards where awake) as waiting`
      .execute(this.db)
      .then((r) => {
        const waiting = r.rows[0]?.waiting === true;
        this.known = { at: Date.now(), waiting };
        return waiting;
      })
      .finally(() => {
        this.asking = undefined;
      });
    return this.asking;
  }

  /**
   * Waits while events wait, for at most `maxMs`, asking again every `cacheMs`. A sync page pays
   * this before it commits: its transaction and the rows it writes compete with the event drains
   * for Postgres and the CPU, and a change event is what someone waits for now, while a full sync
   * is a backfill. A bounded pause per page, so a steady stream of events slows a sync down but
   * never stops it.
   */
  async yieldTo(maxMs: number): Promise<void> {
    const until = Date.now() + maxMs;
    while (Date.now() < until && (await this.waiting())) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.cacheMs, Math.max(1, until - Date.now()))));
    }
  }
}
