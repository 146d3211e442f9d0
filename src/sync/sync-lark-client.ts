import { LarkApiError, LarkResponseRefusedError, LarkTransportError } from '../lark/errors.js';
import type { LarkHttp, LarkRequest } from '../lark/http.js';
import type { Metrics } from '../metrics/metrics.js';
import type { TenantTokens } from '../tokens/tokens.service.js';
import { AppError } from '../errors.js';
import { TenantNotActiveError } from '../tenants/tenant-errors.js';
import { UserAuthorizationRequiredError } from '../grants/grant-errors.js';
import { bucketOf, type Pacer, type RateLimit } from './pacer.js';
import { SliceDeferredError, SyncError } from './sync-errors.js';

/** Per-run counters that end up on the run row. */
export interface RunCounters {
  upstreamCalls: number;
  throttledWaits: number;
}

export interface RetryPolicy {
  /** attempts for 5xx / timeouts / transient codes before the run fails */
  maxAttempts: number;
  /** throttling answers tolerated for one call before the run fails as rate_limited */
  maxThrottles: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** per-call timeout; a call that times out is retried like a 5xx */
  timeoutMs: number;
  /** longest throttle wait honoured: a server asking for more (x-ogw-ratelimit-reset: 3600) gets this */
  maxThrottleWaitMs: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 5,
  maxThrottles: 20,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  timeoutMs: 15_000,
  maxThrottleWaitMs: 60_000,
};

/** Codes that mean "try again later" (limits-and-errors.md §4). */
const TRANSIENT_CODES = new Set([1254607, 1254036, 1255040, 1395001, 1225000, 131001, 131007, 1061001, 1500, 1503, 5000, 10101, 96001, 1254291, 1254002]);
/** Codes that mean "the app is not allowed": a configuration problem, never retried. */
const PERMISSION_CODES = new Set([99991672, 99991676, 99991679, 1254302, 40003, 40004, 40014, 1220005, 1390009, 131006, 99991662, 99991673, 10014, 91403]);
/** Codes that mean "no such thing" (a Base, table, view, record or wiki node): the item is gone or misnamed. */
const NOT_FOUND_CODES = new Set([1254003, 1254004, 1254005, 1254040, 1254041, 1254042, 131005]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Full jitter (AWS "Exponential Backoff And Jitter"): uniform in [0, min(cap, base * 2^n)]. */
export function fullJitter(attempt: number, policy: RetryPolicy): number {
  return Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
}

/**
 * The connectors' way to call Lark for one tenant: paced by the shared per-(app, tenant, API)
 * budget, token errors handled by the token service (re-mint, retry once), throttling answered by
 * waiting `x-ogw-ratelimit-reset` (else full-jitter backoff), 5xx and timeouts retried a bounded
 * number of times, and every failure turned into a SyncError with a stable class.
 */
export class SyncLarkClient {
  constructor(
    private readonly services: { http: LarkHttp; metrics: Metrics },
    private readonly tokens: TenantTokens,
    private readonly pacer: Pacer,
    /** the module's APIs and their limits (SyncModuleDef.limits) */
    private readonly limits: Readonly<Record<string, RateLimit>>,
    readonly counters: RunCounters,
    private readonly checkAlive: () => Promise<void>,
    private readonly policy: RetryPolicy = defaultRetryPolicy,
    /** When the slice's time is up (Date.now() ms): a throttle wait past it ends the slice. */
    private readonly deadline: number = Number.POSITIVE_INFINITY,
  ) {}

  /** Calls the API and returns `data` (or `{}` when Lark sends none). */
  async call<T>(api: string, req: Omit<LarkRequest, 'bearer'>): Promise<T> {
    return this.request(api, req, (body: { data?: T }) => (body.data ?? {}) as T);
  }

  /** Downloads a file (paced, retried and classified like `call`); a JSON answer is Lark's error. */
  async download(api: string, req: Omit<LarkRequest, 'bearer' | 'bytes'>): Promise<Buffer> {
    return this.request(api, { ...req, bytes: true }, (body: { bytes?: Buffer }) => body.bytes ?? Buffer.alloc(0));
  }

  private async request<B, T>(api: string, req: Omit<LarkRequest, 'bearer'>, pick: (body: B) => T): Promise<T> {
    const limit = this.limits[api];
    // Every call is paced: an API the module did not declare is a bug in the module, not Lark's.
    if (!limit) throw new Error(`Lark API ${api} is not among the module's declared limits`);
    const bucket = bucketOf(this.tokens.app.appId, this.tokens.tenantKey, api, limit);
    let attempt = 0;
    let throttles = 0;
    // A send this long after its pace takes a fresh one (see below): half an interval, at least
    // 100 ms (a lookup of a few ms is usual, and re-pacing 50/s APIs after each would halve them).
    const staleAfterMs = Math.max(500 / limit.perSecond, 100);
    for (;;) {
      await this.pacer.take(bucket, limit);
      let pacedAt = Date.now();
      this.counters.upstreamCalls += 1;
      try {
        const res = await this.tokens.withToken(async (token, baseUrl) => {
          // The token is looked up after the pace (a database read, slower under load): a call
          // whose lookup took over half an interval would reach Lark after calls paced later, and
          // six docx reads fell in one of Lark's seconds (docs-pacing in CI, a refusal in two docs
          // benches). Such a call, and a send again with a fresh token, is paced again. Pacing
          // every call after its lookup instead made the attendance test's sync three times slower.
          if (Date.now() - pacedAt > staleAfterMs) {
            await this.pacer.take(bucket, limit);
            pacedAt = Date.now();
          }
          return this.services.http.call<B>(baseUrl, {
            ...req,
            endpoint: req.endpoint ?? api,
            bearer: token,
            timeoutMs: req.timeoutMs ?? this.policy.timeoutMs,
          });
        });
        return pick(res.body);
      } catch (err) {
        const decision = this.classify(err);
        if (decision.kind === 'fail') throw decision.error;
        if (decision.kind === 'throttle') {
          throttles += 1;
          this.counters.throttledWaits += 1;
          this.services.metrics.syncThrottledWaits.inc();
          if (throttles > this.policy.maxThrottles) {
            throw new SyncError('rate_limited', `Lark kept throttling ${api} after ${throttles} waits`);
          }
          const waitMs = Math.min(decision.waitMs ?? fullJitter(throttles, this.policy), this.policy.maxThrottleWaitMs);
          // A wait the slice cannot finish is not slept in a worker slot: the run comes back then.
          if (Date.now() + waitMs > this.deadline) throw new SliceDeferredError(new Date(Date.now() + waitMs));
          await sleep(waitMs);
        } else {
          attempt += 1;
          if (attempt >= this.policy.maxAttempts) {
            throw new SyncError('upstream_unavailable', `${api} failed ${attempt} times: ${(err as Error).message}`);
          }
          await sleep(fullJitter(attempt, this.policy));
        }
        // A long wait is a good moment to notice a cancel or a lost lease.
        await this.checkAlive();
      }
    }
  }

  private classify(err: unknown): { kind: 'throttle'; waitMs?: number } | { kind: 'retry' } | { kind: 'fail'; error: Error } {
    if (err instanceof LarkApiError) {
      if (err.isRateLimited) {
        return { kind: 'throttle', waitMs: err.retryAfterSeconds !== undefined ? err.retryAfterSeconds * 1000 + 50 : undefined };
      }
      if (err.isTokenInvalid) {
        return { kind: 'fail', error: new SyncError('token_error', `Lark rejected a freshly minted token (code ${err.code})`, err.code) };
      }
      if (PERMISSION_CODES.has(err.code) || err.httpStatus === 403) {
        return { kind: 'fail', error: new SyncError('permission_denied', `Lark denied ${err.endpoint} (code ${err.code}): ${err.larkMessage}`, err.code) };
      }
      if (NOT_FOUND_CODES.has(err.code)) {
        return { kind: 'fail', error: new SyncError('not_found', `Lark found nothing at ${err.endpoint} (code ${err.code}): ${err.larkMessage}`, err.code) };
      }
      if (TRANSIENT_CODES.has(err.code) || err.httpStatus >= 500) return { kind: 'retry' };
      return { kind: 'fail', error: new SyncError('invalid_config', `Lark refused ${err.endpoint} (code ${err.code}): ${err.larkMessage}`, err.code) };
    }
    if (err instanceof LarkResponseRefusedError) {
      // Asking again would fetch the same oversized body (or redirect) again.
      return { kind: 'fail', error: new SyncError('upstream_refused', err.message) };
    }
    if (err instanceof LarkTransportError) {
      if (err.httpStatus === 429) return { kind: 'throttle' };
      return { kind: 'retry' };
    }
    if (err instanceof UserAuthorizationRequiredError) {
      // The user's grant ended mid-run (revoked, refresh token gone): only that user can fix it.
      return { kind: 'fail', error: new SyncError('user_authorization_required', err.message) };
    }
    if (err instanceof AppError || err instanceof TenantNotActiveError) {
      const cls = err instanceof TenantNotActiveError ? 'tenant_not_active' : 'token_error';
      return { kind: 'fail', error: new SyncError(cls, err.message) };
    }
    return { kind: 'fail', error: err instanceof Error ? err : new Error(String(err)) };
  }
}
