/** Codes meaning "this access token is no good": drop it, mint again, retry once. */
export const TOKEN_INVALID_CODES: ReadonlySet<number> = new Set([99991661, 99991663, 99991664, 99991665, 99991668]);

/** The app_ticket is missing or stale: ask Lark to push a fresh one. */
export const TICKET_INVALID_CODES: ReadonlySet<number> = new Set([10012]);

/** Throttling, whatever the HTTP status (429, or 400 on legacy APIs, or 200 on bitable). */
export const RATE_LIMIT_CODES: ReadonlySet<number> = new Set([99991400, 1254290, 1000004, 1000005, 190005]);

/** A Lark answer with a non-zero `code`. Never carries tokens, secrets or request bodies. */
export class LarkApiError extends Error {
  constructor(
    readonly endpoint: string,
    readonly code: number,
    readonly larkMessage: string,
    readonly httpStatus: number,
    readonly logId: string | undefined,
    readonly retryAfterSeconds: number | undefined,
  ) {
    super(`Lark ${endpoint} answered code ${code} (HTTP ${httpStatus}): ${larkMessage}`);
    this.name = 'LarkApiError';
  }

  get isTokenInvalid(): boolean {
    return TOKEN_INVALID_CODES.has(this.code);
  }

  get isTicketInvalid(): boolean {
    return TICKET_INVALID_CODES.has(this.code);
  }

  get isRateLimited(): boolean {
    return RATE_LIMIT_CODES.has(this.code) || this.httpStatus === 429;
  }
}

/** The call never got a Lark answer: connection refused, reset, timeout, or a non-JSON body. */
export class LarkTransportError extends Error {
  constructor(
    readonly endpoint: string,
    readonly reason: string,
    readonly httpStatus?: number,
  ) {
    super(`Lark ${endpoint} could not be reached: ${reason}`);
    this.name = 'LarkTransportError';
  }
}

/**
 * larksync refused Lark's answer itself: a body over the byte cap, or a redirect. Not a
 * LarkTransportError on purpose: callers retry those, and asking again would only fetch the same
 * oversized body (or the same redirect) again, so this fails the call for good.
 */
export class LarkResponseRefusedError extends Error {
  readonly retryable = false;
  constructor(
    readonly endpoint: string,
    readonly reason: 'body_too_large' | 'redirect',
    readonly httpStatus: number,
  ) {
    super(
      reason === 'body_too_large'
        ? `Lark ${endpoint} answered with a body over larksync's size cap (HTTP ${httpStatus})`
        : `Lark ${endpoint} answered with a redirect (HTTP ${httpStatus}), which larksync never follows`,
    );
    this.name = 'LarkResponseRefusedError';
  }
}
