import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AppCredentials } from '../apps/app-credentials.js';
import type { Clock } from '../clock.js';
import type { Database } from '../db/database.js';
import { tokenKeyId, type TokenKey } from './tokens.repository.js';

/**
 * The minute cron's body (task `refresh_tokens`): mints every token whose refresh time has come
 * before a caller needs it, so callers almost never wait for Lark.
 */

export interface RefreshTickOptions {
  /** Due tokens read per query. */
  batch: number;
  /** Mints in flight at once: each holds a pool connection while it waits for Lark. */
  concurrency: number;
  /** No new mint starts after this long, so one tick ends before the next minute's begins. */
  budgetMs: number;
}

export const defaultRefreshTick: RefreshTickOptions = { batch: 500, concurrency: 4, budgetMs: 40_000 };

export interface RefreshTally {
  refreshed: number;
  failed: number;
  /** Due tokens the tick had no time left for. */
  left: number;
}

/** One kind of token, as the cron works through it. Keys are log fields: they never hold a secret. */
export interface DueTokens<K extends object> {
  /**
   * Up to `limit` keys due now, the healthy ones first, then the most urgent; none that backs off
   * or is being minted elsewhere.
   */
  due(limit: number): Promise<K[]>;
  id(key: K): string;
  /** Refreshes one; rejects when the refresh failed, also when a still-valid token was handed back instead. */
  refresh(key: K): Promise<void>;
}

/**
 * Refreshes due tokens, oldest refresh time first, a few at a time, until none is due or the
 * tick's budget is spent. Each key is tried once per call, so a tenant Lark keeps refusing (its
 * failing token comes last and comes back while no backoff holds it) cannot starve the others.
 */
export async function refreshDue<K extends object>(tokens: DueTokens<K>, opts: RefreshTickOptions, log: Logger): Promise<RefreshTally> {
  const { batch, concurrency, budgetMs } = opts;
  const deadline = performance.now() + budgetMs;
  const tried = new Set<string>();
  let refreshed = 0;
  let failed = 0;
  let left = 0;
  for (;;) {
    const due = await tokens.due(batch);
    const fresh = due.filter((key) => !tried.has(tokens.id(key)));
    if (fresh.length === 0) break;
    let next = 0;
    const worker = async () => {
      while (next < fresh.length && performance.now() < deadline) {
        const key = fresh[next++]!;
        tried.add(tokens.id(key));
        try {
          await tokens.refresh(key);
          refreshed += 1;
        } catch (err) {
          failed += 1;
          const fields: Record<string, unknown> = { ...key, err: (err as Error).message };
          log.warn(fields, 'token refresh failed');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, fresh.length) }, worker));
    if (performance.now() >= deadline) {
      left = fresh.length - next;
      if (left > 0) log.warn({ left, refreshed }, 'token refresh tick ran out of time; the next tick goes on');
      break;
    }
  }
  return { refreshed, failed, left };
}

/**
 * App and tenant access tokens due for a refresh (for active tenants, and the apps behind them).
 * One per tick: it looks each app up once.
 */
export function dueAccessTokens(
  db: Kysely<Database>,
  clock: Clock,
  lookup: { app(appId: string): Promise<AppCredentials>; refresh(key: TokenKey, app: AppCredentials): Promise<void> },
): DueTokens<TokenKey> {
  const apps = new Map<string, Promise<AppCredentials>>();
  return {
    due: async (limit) => (await dueTokenRows(db, clock, limit)).map((r) => ({ kind: r.kind, appId: r.app_id, tenantKey: r.tenant_key })),
    id: tokenKeyId,
    refresh: async (key) => {
      let app = apps.get(key.appId);
      if (!app) apps.set(key.appId, (app = lookup.app(key.appId)));
      await lookup.refresh(key, await app);
    },
  };
}

function dueTokenRows(db: Kysely<Database>, clock: Clock, limit: number) {
  const now = clock.sql();
  return db
    .selectFrom('access_tokens as t')
    .leftJoin('tenants as tn', (j) => j.onRef('tn.tenant_key', '=', 't.tenant_key').onRef('tn.app_id', '=', 't.app_id'))
    .select(['t.kind', 't.app_id', 't.tenant_key'])
    .where((eb) => eb.or([eb('t.refresh_at', '<=', now), eb('t.token_sealed', 'is', null)]))
    .where((eb) => eb.or([eb('t.kind', '=', 'app'), eb('tn.status', '=', 'active')]))
    // Backing off after failures: not before its time. Being minted elsewhere: not twice.
    .where((eb) => eb.or([eb('t.next_attempt_at', 'is', null), eb('t.next_attempt_at', '<=', now)]))
    .where(sql<boolean>`(t.minting_until is null or t.minting_until <= clock_timestamp())`)
    // Failing tokens last, then the most urgent: no token at all, then the earliest refresh time.
    .orderBy(sql`t.failures > 0`)
    .orderBy(sql`t.refresh_at asc nulls first`)
    .limit(limit)
    .execute();
}
