/** Stable error classes shown on a run (`error.class`). */
export type SyncErrorClass =
  | 'unsupported_for_store_app'
  | 'permission_denied'
  | 'invalid_config'
  | 'not_found'
  | 'upstream_unavailable'
  | 'rate_limited'
  | 'token_error'
  | 'tenant_not_active'
  /** larksync refused Lark's answer: a body over the size cap, or a redirect */
  | 'upstream_refused'
  /** the run's slices kept dying with their process (crash, out of memory) */
  | 'crashed_repeatedly'
  /** the run reads as a user whose authorization needs renewing: the message says who must sign in */
  | 'user_authorization_required'
  | 'internal_error';

export class SyncError extends Error {
  constructor(
    readonly errorClass: SyncErrorClass,
    message: string,
    /** The Lark `code` behind the failure, when there was one (connectors branch on it). */
    readonly larkCode?: number,
  ) {
    super(message);
    this.name = 'SyncError';
  }
}

/**
 * Lark asked the slice to wait (throttling) for longer than the slice has left: the slice ends and
 * its run is queued again for that time, rather than sleeping in a worker slot.
 */
export class SliceDeferredError extends Error {
  constructor(readonly resumeAt: Date) {
    super(`slice deferred until ${resumeAt.toISOString()} (throttled)`);
    this.name = 'SliceDeferredError';
  }
}

/** The run's lease was taken over (a crashed slice was resumed elsewhere) or the run was cancelled. */
export class RunAbortedError extends Error {
  constructor(readonly reason: 'cancelled' | 'lease_lost') {
    super(`run slice stopped: ${reason}`);
    this.name = 'RunAbortedError';
  }
}

/**
 * Failures that belong to one item of a run (a Base table, an approval code, a department): the
 * phase records them and goes on with the other items. Everything else would fail every item
 * alike and stops the run: throttling that never ends, a token Lark keeps refusing, a tenant gone,
 * and a scope the app lacks altogether (99991672/76/79 name an API scope, not the item).
 *
 * `upstream_unavailable` (a call that kept failing after its retries) is an item's only when the
 * caller says so: for Base a page Lark cannot serve (too large, an internal error on that table)
 * is the table's; elsewhere it means Lark is down, and trying every item would only multiply the
 * calls of an outage.
 */
const ITEM_CLASSES: ReadonlySet<SyncErrorClass> = new Set(['permission_denied', 'not_found', 'invalid_config']);
const APP_SCOPE_CODES: ReadonlySet<number> = new Set([99991672, 99991676, 99991679]);

export function isItemFailure(err: unknown, opts: { unavailable?: boolean } = {}): err is SyncError {
  if (!(err instanceof SyncError)) return false;
  if (err.larkCode !== undefined && APP_SCOPE_CODES.has(err.larkCode)) return false;
  const unavailable = err.errorClass === 'upstream_unavailable' || err.errorClass === 'upstream_refused';
  return ITEM_CLASSES.has(err.errorClass) || (opts.unavailable === true && unavailable);
}
