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
