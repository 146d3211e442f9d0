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

/** The run's lease was taken over (a crashed slice was resumed elsewhere) or the run was cancelled. */
export class RunAbortedError extends Error {
  constructor(readonly reason: 'cancelled' | 'lease_lost') {
    super(`run slice stopped: ${reason}`);
    this.name = 'RunAbortedError';
  }
}

/**
 * Failures that belong to one item of a run (a Base table, an approval code, a department): the
 * phase records them and goes on with the other items. Everything else (throttling that never
 * ends, a token Lark keeps refusing, a tenant gone) would fail every item alike and stops the run.
 */
const ITEM_CLASSES: ReadonlySet<SyncErrorClass> = new Set(['permission_denied', 'not_found', 'invalid_config', 'upstream_unavailable']);

export function isItemFailure(err: unknown): err is SyncError {
  return err instanceof SyncError && ITEM_CLASSES.has(err.errorClass);
}
