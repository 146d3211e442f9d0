import { SealError } from '../crypto/sealer.js';
import { AppError } from '../errors.js';
import { LarkApiError, LarkTransportError } from '../lark/errors.js';

/**
 * What kind of failure a token mint ran into: what an operator reads in the tenant's token health
 * ("fix the secret" and "Lark is down" call for different things), and what decides the backoff.
 */
export type MintErrorClass =
  /** Lark refused the app id or secret (a revoked or rotated secret): fix the credentials. */
  | 'credentials_rejected'
  /** The tenant has not installed, or has disabled, the app. */
  | 'app_not_available'
  /** The store app's app_ticket is missing or no longer accepted; Lark is asked to push one. */
  | 'app_ticket'
  | 'throttled'
  /** Lark answered with a server error, or could not be reached at all. */
  | 'lark_unavailable'
  /** Any other refusal by Lark. */
  | 'lark_refused'
  /** The stored app secret cannot be opened with the configured ENCRYPTION_KEY(S). */
  | 'secret_unreadable'
  | 'internal';

export const MINT_ERROR_CLASSES: readonly MintErrorClass[] = [
  'credentials_rejected',
  'app_not_available',
  'app_ticket',
  'throttled',
  'lark_unavailable',
  'lark_refused',
  'secret_unreadable',
  'internal',
];

/**
 * auth.md §6: 10015 wrong app_secret, 99991543 app_id or app_secret wrong or unknown, 10005 app
 * id unauthorized ("check credentials").
 */
const CREDENTIAL_CODES: ReadonlySet<number> = new Set([10015, 99991543, 10005]);

/**
 * auth.md §3.4, §6: the code for "this tenant has not installed the app" is undocumented on the
 * tenant token endpoint (unconfirmed), so every candidate counts: 10013 (tenant token fail), 10014
 * (app disabled), 99991662 (app not in use), 99991673 (app unavailable in this tenant), 20009.
 */
const NOT_AVAILABLE_CODES: ReadonlySet<number> = new Set([10013, 10014, 99991662, 99991673, 20009]);

/** A token is not available because its mints keep failing and the next attempt is not due yet. */
export class TokenUnavailableError extends AppError {
  constructor(
    what: string,
    failures: number,
    readonly mintClass: MintErrorClass,
    lastCode: string,
    nextAttemptAt: Date,
  ) {
    super(
      503,
      'token_unavailable',
      `${what} is not available: minting it failed ${failures} times in a row (last: ${mintClass}, code ${lastCode}); ` +
        `larksync tries again after ${nextAttemptAt.toISOString()}`,
    );
  }
}

export function mintErrorClass(err: unknown): MintErrorClass {
  if (err instanceof TokenUnavailableError) return err.mintClass;
  if (err instanceof LarkApiError) {
    if (err.isRateLimited) return 'throttled';
    if (err.isTicketInvalid) return 'app_ticket';
    if (err.httpStatus >= 500) return 'lark_unavailable';
    if (CREDENTIAL_CODES.has(err.code)) return 'credentials_rejected';
    if (NOT_AVAILABLE_CODES.has(err.code)) return 'app_not_available';
    return 'lark_refused';
  }
  if (err instanceof LarkTransportError) return 'lark_unavailable';
  if (err instanceof SealError) return 'secret_unreadable';
  if (err instanceof AppError && err.code === 'app_ticket_missing') return 'app_ticket';
  return 'internal';
}

/** The code stored with a failure: Lark's code, or larksync's own. */
export function mintErrorCode(err: unknown): string {
  if (err instanceof LarkApiError) return String(err.code);
  if (err instanceof AppError) return err.code;
  if (err instanceof LarkTransportError) return 'transport_error';
  if (err instanceof SealError) return 'secret_unreadable';
  return 'internal_error';
}

export interface MintBackoff {
  /** The wait after the second failure in a row; it doubles with each further one. */
  baseSeconds: number;
  capSeconds: number;
}

export const defaultMintBackoff: MintBackoff = { baseSeconds: 10, capSeconds: 3600 };

/**
 * Seconds until the next mint may be tried after `failures` failures in a row, or null for none.
 * The first failure waits for nothing: one lost answer should not keep a tenant without a token.
 * From the second on, the wait doubles up to the cap. The app_ticket has its own pacing (resends
 * once per cool-down, and callers wait for the push), so it does not back off here. `spread`
 * (in [0, 1), per token key) stretches the wait by up to a quarter, so tenants that failed
 * together (a Lark outage) do not all retry together.
 */
export function backoffSeconds(failures: number, cls: MintErrorClass, policy: MintBackoff, spread: number): number | null {
  if (cls === 'app_ticket' || failures < 2) return null;
  const wait = Math.min(policy.capSeconds, policy.baseSeconds * 2 ** Math.min(failures - 2, 30));
  return Math.round(wait * (1 + spread / 4));
}
