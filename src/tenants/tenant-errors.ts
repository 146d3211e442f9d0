/**
 * A tenant's state refuses what was asked. Domain errors: they carry a stable code but no HTTP
 * status; plugins/error-handler.ts maps them to HTTP, and the sync layer to its own classes.
 */

/** larksync has never seen this tenant. */
export class TenantNotFoundError extends Error {
  readonly code = 'tenant_not_found';
  constructor(readonly tenantKey: string) {
    super(`tenant ${tenantKey} is not known`);
    this.name = 'TenantNotFoundError';
  }
}

/** The tenant no longer uses the app (uninstalled), or another app now serves it. */
export class TenantNotActiveError extends Error {
  readonly code = 'tenant_not_active';
  /** `why` completes "tenant <key> …", e.g. "has uninstalled the app". */
  constructor(
    readonly tenantKey: string,
    why: string,
  ) {
    super(`tenant ${tenantKey} ${why}`);
    this.name = 'TenantNotActiveError';
  }
}
