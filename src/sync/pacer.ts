import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { GroupCommitter } from '../db/group-commit.js';

export interface RateLimit {
  /** sustained requests per second */
  perSecond: number;
  /** requests allowed in a burst */
  burst: number;
  /**
   * Whose budget it is: Lark's limits are per app and tenant (the default), but a few are stated
   * per app (docs content, 5/s): those share one bucket across all tenants of the app.
   */
  scope?: 'tenant' | 'app';
}

/**
 * A per-minute limit as a token bucket whose burst plus one minute of refill stays within the
 * minute's allowance, so even a window that starts with a full bucket is not exceeded.
 */
export const perMinute = (n: number, burst = Math.max(1, Math.floor(n / 20)), scope?: 'tenant' | 'app'): RateLimit => ({
  perSecond: (n - burst) / 60,
  burst,
  ...(scope ? { scope } : {}),
});

/**
 * A per-second limit the same way: a burst of one plus one second of refill is exactly the limit,
 * so no one-second window, wherever it starts, sees more than `n` calls. (A bucket of `n` refilled
 * at `n`/s would let 2n through in the second after an idle one, and Lark answers the excess with
 * a throttle that costs a whole second.) The pace is (n - 1)/s: 19 of Lark's 20 search calls a
 * second, 95% of the tier, in exchange for never being throttled.
 */
export const perSecond = (n: number, scope?: 'tenant' | 'app'): RateLimit => ({ perSecond: n - 1, burst: 1, ...(scope ? { scope } : {}) });

/** The bucket of one API's budget: per (app, tenant, API), or per (app, API) for per-app limits. */
export function bucketOf(appId: string, tenantKey: string, api: string, limit: RateLimit): string {
  return limit.scope === 'app' ? `${appId}:*:${api}` : `${appId}:${tenantKey}:${api}`;
}

/**
 * Merges the rate limits modules declare (their frequency tiers come from limits-and-errors.md,
 * per API, per app, per tenant; dual limits such as "1000/min and 50/s" are paced at the
 * per-minute rate with a burst the per-second cap allows). Two declarations of one API must agree.
 */
export function mergeLimits(declared: Iterable<[owner: string, limits: Readonly<Record<string, RateLimit>>]>): ReadonlyMap<string, RateLimit> {
  const merged = new Map<string, RateLimit & { owner: string }>();
  for (const [owner, limits] of declared) {
    for (const [api, limit] of Object.entries(limits)) {
      const other = merged.get(api);
      if (other && (other.perSecond !== limit.perSecond || other.burst !== limit.burst || (other.scope ?? 'tenant') !== (limit.scope ?? 'tenant'))) {
        throw new Error(`${owner} and ${other.owner} declare different rate limits for ${api}`);
      }
      merged.set(api, { ...limit, owner });
    }
  }
  return merged;
}

/**
 * A token bucket per (app, tenant, API) kept in Postgres, so every larksync process draws from
 * one budget. Each take is one atomic upsert; a negative balance is a reservation: the caller
 * sleeps until its token exists, so waiting callers are served in the order they asked.
 *
 * A caller that had to wait (it goes as fast as the limit allows, like a paged read) also gets its
 * next token reserved at once, while it makes its call: the next take then only waits for that
 * token's time instead of a database round trip on top, which at 19 calls a second would
 * otherwise stretch every interval. A reservation is used only while it is fresh (less than half
 * an interval past its time), so calls never bunch up more than the bucket allows; one left
 * unused (the caller stopped) just spends that one token.
 */
export class Pacer {
  /** bucket -> the time (Date.now() ms) of a token reserved ahead, undefined if reserving failed */
  private readonly ahead = new Map<string, Promise<number | undefined>>();
  /** Takes asked while one is in flight go together in the next statement (takeTokens). */
  private readonly takes: GroupCommitter<Take, number>;

  constructor(
    db: Kysely<Database>,
    private readonly scale: number = 1,
  ) {
    this.takes = new GroupCommitter((batch) => takeTokens(db, batch), { maxBatch: 100, maxInFlight: 1 });
  }

  /** Returns the milliseconds waited. */
  async take(bucket: string, limit: RateLimit): Promise<number> {
    const rate = limit.perSecond * this.scale;
    const interval = 1000 / rate;
    const started = Date.now();
    let at: number | undefined;
    const reserved = this.ahead.get(bucket);
    if (reserved) {
      this.ahead.delete(bucket);
      const time = await reserved;
      if (time !== undefined && Date.now() - time < interval / 2) at = time;
    }
    // Still at the limit (it used a reservation, or must wait now): reserve its next token.
    const keepUp = at !== undefined;
    at ??= await this.reserve(bucket, limit);
    const waitMs = at - Date.now();
    // One reservation ahead per bucket: callers of this process taking together (a write's
    // read-back sends its batch_gets at once) would otherwise each replace the last one's, and
    // every replaced reservation is a token spent on nothing.
    if ((keepUp || waitMs > 0) && !this.ahead.has(bucket)) this.ahead.set(bucket, this.reserve(bucket, limit).catch(() => undefined));
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    return Math.max(0, Date.now() - started);
  }

  /** Takes one token now; resolves with the time it may be used. */
  private reserve(bucket: string, limit: RateLimit): Promise<number> {
    return this.takes.submit({ bucket, rate: limit.perSecond * this.scale, burst: Math.max(1, limit.burst * this.scale) });
  }
}

/** One token of a bucket, as Pacer.reserve asks for it. */
interface Take {
  bucket: string;
  rate: number;
  burst: number;
}

/**
 * Takes one token for each of `takes`, in as few statements as there are takes of the most-asked
 * bucket (usually one: the calls a process makes at once are mostly other tenants'), and answers
 * for each the time it may be used (Date.now() ms). Each bucket is one atomic upsert; a negative
 * balance is a reservation, used when the refill reaches it. At 200 change events a second, one
 * statement per upstream call was the most frequent statement larksync made after the freshness
 * checks.
 *
 * Committed without waiting for the WAL flush (synchronous_commit off for this statement's own
 * transaction; it never runs inside another one): a bucket update lost in a database crash only
 * makes the bucket a little more generous once, and every upstream call would otherwise wait for
 * a disk flush first.
 */
async function takeTokens(db: Kysely<Database>, takes: readonly Take[]): Promise<number[]> {
  const answers: number[] = new Array(takes.length);
  // One ON CONFLICT statement touches a row once: a bucket asked twice goes in a second round.
  // Should a later round fail, the group committer asks each take again on its own, and the takes
  // of the rounds before spend a second token: the budget is never exceeded, only underused once.
  let rest = takes.map((take, i) => ({ take, i }));
  while (rest.length > 0) {
    const round = new Map<string, { take: Take; i: number }>();
    const later: typeof rest = [];
    for (const r of rest) {
      if (round.has(r.take.bucket)) later.push(r);
      else round.set(r.take.bucket, r);
    }
    rest = later;
    const asked = [...round.values()];
    const input = JSON.stringify(asked.map(({ take }) => take));
    const res = await sql<{ bucket: string; tokens: number }>`
      with req as (select r.bucket, r.rate, r.burst from jsonb_to_recordset(${input}::jsonb) as r(bucket text, rate float8, burst float8))
      insert into rate_buckets as b (bucket, tokens, updated_at)
      select r.bucket, r.burst - 1, clock_timestamp() from req r, (select set_config('synchronous_commit', 'off', true)) as async_commit
      on conflict (bucket) do update set
        tokens = least((select r.burst from req r where r.bucket = b.bucket),
                       b.tokens + extract(epoch from clock_timestamp() - b.updated_at) * (select r.rate from req r where r.bucket = b.bucket)) - 1,
        updated_at = clock_timestamp()
      returning b.bucket, b.tokens`.execute(db);
    const now = Date.now();
    const balance = new Map(res.rows.map((row) => [row.bucket, Number(row.tokens)]));
    for (const { take, i } of asked) {
      const tokens = balance.get(take.bucket) ?? 0;
      answers[i] = tokens >= 0 ? now : now + Math.ceil((-tokens / take.rate) * 1000);
    }
  }
  return answers;
}
