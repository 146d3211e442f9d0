import type { EventHandler } from './handlers/types.js';
import { handleAppTicket } from './handlers/app-ticket.js';
import { handleAppOpen } from './handlers/app-open.js';
import { handleAppStatusChange } from './handlers/app-status-change.js';
import { handleAppUninstalled } from './handlers/app-uninstalled.js';
import { handleUserTokenRevoked } from './handlers/user-token-revoked.js';

/** Event type -> handler. Types not listed are stored and marked `ignored`. */
export const eventHandlers: Readonly<Record<string, EventHandler>> = {
  app_ticket: handleAppTicket,
  app_open: handleAppOpen,
  app_status_change: handleAppStatusChange,
  app_uninstalled: handleAppUninstalled,
  'auth.user_access_token.revoked_v4': handleUserTokenRevoked,
};
