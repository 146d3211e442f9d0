import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LarkSimulator, TenantIdentity } from '../lark-simulator.js';
import { larkReply } from '../lark-reply.js';

export { larkReply };

export const ok = (reply: FastifyReply, data: unknown) => larkReply(reply, 200, { code: 0, msg: 'success', data });

/** Opaque page tokens that carry an offset, like Lark's (which are opaque strings). */
export function encodePageToken(offset: number): string {
  return `pt_${Buffer.from(JSON.stringify({ o: offset })).toString('base64url')}`;
}

export function decodePageToken(token: unknown): number | undefined {
  if (token === undefined || token === '') return 0;
  if (typeof token !== 'string' || !token.startsWith('pt_')) return undefined;
  try {
    const o = (JSON.parse(Buffer.from(token.slice(3), 'base64url').toString('utf8')) as { o?: unknown }).o;
    return typeof o === 'number' && Number.isInteger(o) && o >= 0 ? o : undefined;
  } catch {
    return undefined;
  }
}

export interface Paged<T> {
  items: T[];
  has_more: boolean;
  page_token?: string;
}

export function paginate<T>(all: T[], offset: number, pageSize: number): Paged<T> {
  const items = all.slice(offset, offset + pageSize);
  const next = offset + items.length;
  const hasMore = next < all.length;
  return hasMore ? { items, has_more: true, page_token: encodePageToken(next) } : { items, has_more: false };
}

export interface SimLimit {
  perSecond?: number;
  perMinute?: number;
  /** HTTP status of the over-limit answer (default 429; Lark's docx reads answer 400, corrections.md). */
  status?: number;
}

/**
 * Lark's frequency control per API, per app, per tenant: fixed windows of 1 s and 60 s. Over the
 * limit it answers HTTP 429, code 99991400, with x-ogw-ratelimit-limit / -reset.
 */
export class SimRateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  throttled = 0;

  constructor(private readonly enabled: () => boolean) {}

  /** Returns true when the request may proceed; otherwise it has answered 429. */
  admit(reply: FastifyReply, key: string, limit: SimLimit): boolean {
    if (!this.enabled()) return true;
    const now = Date.now();
    for (const [span, max] of [
      [1_000, limit.perSecond],
      [60_000, limit.perMinute],
    ] as const) {
      if (!max) continue;
      const wkey = `${key}:${span}`;
      let w = this.windows.get(wkey);
      if (!w || now - w.start >= span) {
        w = { start: now, count: 0 };
        this.windows.set(wkey, w);
      }
      if (w.count >= max) {
        this.throttled += 1;
        const reset = Math.max(1, Math.ceil((w.start + span - now) / 1000));
        void larkReply(
          reply,
          limit.status ?? 429,
          { code: 99991400, msg: 'request trigger frequency limit' },
          { 'x-ogw-ratelimit-limit': String(max), 'x-ogw-ratelimit-reset': String(reset) },
        );
        return false;
      }
    }
    for (const [span, max] of [
      [1_000, limit.perSecond],
      [60_000, limit.perMinute],
    ] as const) {
      if (max) this.windows.get(`${key}:${span}`)!.count += 1;
    }
    return true;
  }
}

/** Deterministic pseudo-random numbers (mulberry32), so generated data is the same every run. */
export function seededRandom(seed: string): () => number {
  let h = 1779033703 ^ seed.length;
  for (let i = 0; i < seed.length; i += 1) {
    h = Math.imul(h ^ seed.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The paged APIs, by their admit() names: the listings SimData.truncateListings can cut short. */
export type PagedApi =
  | 'contact.departments.children'
  | 'contact.users.find_by_department'
  | 'approval.instances.list'
  | 'bitable.fields.list'
  | 'bitable.records.search';

/** The paged docs APIs (docs/routes.ts) SimData.truncateListings can cut short as well. */
export type DocsPagedApi = 'drive.files.list' | 'wiki.spaces.list' | 'wiki.nodes.list' | 'docx.blocks';

/** Every API whose listings can be cut short. */
export type TruncatableApi = PagedApi | DocsPagedApi;

/** What every data route needs: who is calling (token checked) and whether the limit admits it. */
export interface DataApiContext {
  sim: LarkSimulator;
  limiter: SimRateLimiter;
  /** Calls before each page is served (tests edit or delete data "between pages"). */
  onPage?: (api: string, who: TenantIdentity) => void;
  /** Consumes one injected truncation of `api`'s next page, if any (SimData.truncateListings). */
  takeTruncation?: (api: TruncatableApi) => boolean;
}

/**
 * A page as served: unchanged, or, when a truncation of `api` is pending, cut short the way Lark
 * sometimes answers (review finding L5): its items as usual, `has_more: true` and no `page_token`,
 * so the listing cannot be continued. Routes call this where they build a successful page.
 */
export function servePage<P extends { has_more: boolean; page_token?: string }>(ctx: DataApiContext, api: TruncatableApi, page: P): P {
  if (!ctx.takeTruncation?.(api)) return page;
  const { page_token, ...rest } = page;
  return { ...rest, has_more: true } as P;
}

/**
 * Admits a data API call: a valid tenant token, or a valid user access token (then `who.user` is
 * the user it acts as, and routes show only what that user may see), within the API's frequency
 * limit. User-token calls count against the same per-app, per-tenant window (per-user limits are
 * not documented).
 */
export function admit(
  ctx: DataApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  api: string,
  limit: SimLimit,
): TenantIdentity | undefined {
  const who = admitCall(ctx, req, reply, api, limit);
  if (who) ctx.onPage?.(api, who);
  return who;
}

/** As admit, for calls that serve no page (writes, uploads): `onPage` is not called. */
export function admitCall(
  ctx: DataApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  api: string,
  limit: SimLimit,
): TenantIdentity | undefined {
  const who = ctx.sim.authorizeCaller(req, reply);
  if (!who) return undefined;
  if (!ctx.limiter.admit(reply, `${who.appId}:${who.tenantKey}:${api}`, limit)) return undefined;
  return who;
}
