import type { GrantKey } from './grants.repository.js';

/**
 * A user's authorization is needed and there is none that works: never granted, revoked, or its
 * refresh token is gone (expired, revoked, used, or lost in a crash mid-refresh). Only the user can
 * fix it, by signing in again; nothing retries it. Sync runs that read as this user fail with the
 * class `user_authorization_required` and this message.
 */
export class UserAuthorizationRequiredError extends Error {
  readonly code = 'user_authorization_required';
  constructor(
    readonly key: GrantKey,
    readonly userName: string | null,
    readonly reason: string,
  ) {
    super(
      `the Lark user ${userName ? `${userName} (${key.openId})` : key.openId} of tenant ${key.tenantKey} must sign in to larksync again ` +
        `(/auth/lark/login or the admin page): ${reason}`,
    );
    this.name = 'UserAuthorizationRequiredError';
  }
}

/** A refresh failed for now (Lark unavailable) and the stored token is too close to expiry to use. */
export class GrantUnavailableError extends Error {
  readonly code = 'user_token_unavailable';
  constructor(
    readonly key: GrantKey,
    readonly errorClass: string,
    readonly nextAttemptAt: Date | null,
  ) {
    super(
      `the user token of ${key.openId} (tenant ${key.tenantKey}) is not available: refreshing it failed (${errorClass}); ` +
        `larksync tries again${nextAttemptAt ? ` after ${nextAttemptAt.toISOString()}` : ' soon'}`,
    );
    this.name = 'GrantUnavailableError';
  }
}
