import type { AppCredentials } from '../apps/app-credentials.js';
import { AppError } from '../errors.js';
import {
  mintInternalAppToken,
  mintInternalTenantToken,
  mintStoreAppToken,
  mintStoreTenantToken,
  type IssuedToken,
} from '../lark/auth-api.js';
import { LarkApiError } from '../lark/errors.js';
import type { LarkHttp } from '../lark/http.js';
import type { AppTicketsService } from './app-tickets.service.js';

/**
 * How app and tenant access tokens are minted: which Lark calls, with what, and the one retry
 * each flow allows. Storing the token, and the claim around the mint, are the token store's.
 */

/** The app_ticket is not known (yet): Lark was asked to push one. Retry later. */
export class AppTicketMissingError extends AppError {
  constructor(appId: string) {
    super(503, 'app_ticket_missing', `no app_ticket is known for app ${appId} yet; Lark was asked to push one, retry shortly`);
  }
}

/** The app's own token, as the tenant mint of a store app needs it. */
export interface AppTokenSource {
  get(opts?: { afterInvalidation?: boolean }): Promise<string>;
  /** Drops a token Lark refused (only if it is still the stored one). */
  invalidate(token: string): Promise<unknown>;
}

export async function mintAppToken(http: LarkHttp, tickets: AppTicketsService, app: AppCredentials): Promise<IssuedToken> {
  if (app.kind === 'custom') return mintInternalAppToken(http, app);
  let ticket = await tickets.get(app.appId);
  if (!ticket) {
    await tickets.requestResend(app, 'missing');
    ticket = await tickets.waitFor(app.appId);
    if (!ticket) throw new AppTicketMissingError(app.appId);
  }
  try {
    return await mintStoreAppToken(http, app, ticket.ticket);
  } catch (err) {
    if (!(err instanceof LarkApiError) || !err.isTicketInvalid) throw err;
    // Lark no longer accepts our ticket: ask for a new push and try once more with it.
    await tickets.requestResend(app, 'rejected');
    const next = await tickets.waitFor(app.appId, ticket.hash);
    if (!next) throw new AppTicketMissingError(app.appId);
    return mintStoreAppToken(http, app, next.ticket);
  }
}

export async function mintTenantToken(http: LarkHttp, app: AppCredentials, tenantKey: string, appToken: AppTokenSource): Promise<IssuedToken> {
  if (app.kind === 'custom') return mintInternalTenantToken(http, app);
  // The app token is a lookup of its own (it may be fresh, or minted under its own claim); no
  // connection is held meanwhile, so nesting it inside this claim cannot starve the pool.
  const token = await appToken.get();
  try {
    return await mintStoreTenantToken(http, app.baseUrl, token, tenantKey);
  } catch (err) {
    if (!(err instanceof LarkApiError) || !err.isTokenInvalid) throw err;
    // Lark refused the app token: drop it (only if it is still the stored one) and go once more.
    await appToken.invalidate(token);
    const fresh = await appToken.get({ afterInvalidation: true });
    return mintStoreTenantToken(http, app.baseUrl, fresh, tenantKey);
  }
}
