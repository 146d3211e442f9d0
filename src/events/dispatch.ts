import { sql } from 'kysely';
import type { EventHandler } from './handlers/types.js';
import { handleAppTicket } from './handlers/app-ticket.js';
import { handleAppOpen } from './handlers/app-open.js';
import { handleAppStatusChange } from './handlers/app-status-change.js';
import { handleAppUninstalled } from './handlers/app-uninstalled.js';
import { handleUserTokenRevoked } from './handlers/user-token-revoked.js';
import { MODULES } from '../connectors/index.js';
import type { EventMerger } from '../sync/sync-module.js';
import { moduleEventTable, runModuleHandler, type ModuleEventEntry } from './module-events.js';

/**
 * A change event's handler: every module declaring the type (defineModule `events`) gets it, for
 * tenants that enabled the module. The event's row is marked handled in the transaction that
 * applies its rows, so a crash after that commit does not apply it a second time.
 */
function moduleHandler(entries: ModuleEventEntry[]): EventHandler {
  return async (event, ctx) => {
    let outcome: 'processed' | 'ignored' = 'ignored';
    for (const { module, handler } of entries) {
      const done = await runModuleHandler(ctx.services, module, handler, event, {
        eventId: ctx.eventId,
        tenantKey: ctx.tenantKey,
        appId: ctx.appId,
        pushedAt: ctx.pushedAt,
        ...(ctx.receivedAt ? { receivedAt: ctx.receivedAt } : {}),
        // In a drain's group, the group's commit marks the events it applied.
        ...(ctx.group
          ? { group: ctx.group }
          : {
              markHandled: async (trx) => {
                await sql`update lark_events set status = 'processed', processed_at = now(), last_error = null where id = ${ctx.rowId}::bigint`.execute(trx);
              },
            }),
      });
      if (done === 'processed') outcome = 'processed';
    }
    return outcome;
  };
}

const MODULE_EVENTS = moduleEventTable(Object.values(MODULES));

/** Change events (the types modules handle): a drain runs different tenants' at once. */
export const CHANGE_EVENT_TYPES: ReadonlySet<string> = new Set(MODULE_EVENTS.keys());

/**
 * Change event type -> how two consecutive events of a tenant fold into one: only for a type one
 * module handles and declares a merger for.
 */
export const eventMergers: ReadonlyMap<string, EventMerger> = new Map(
  [...MODULE_EVENTS].flatMap(([type, entries]) => {
    const merge = entries.length === 1 ? entries[0]?.module.mergeEvents?.[type] : undefined;
    return merge ? [[type, merge] as const] : [];
  }),
);

/** Event type -> handler: lifecycle events here, change events from the modules. Types not listed are stored and marked `ignored`. */
export const eventHandlers: Readonly<Record<string, EventHandler>> = {
  ...Object.fromEntries([...MODULE_EVENTS].map(([type, entries]) => [type, moduleHandler(entries)])),
  app_ticket: handleAppTicket,
  app_open: handleAppOpen,
  app_status_change: handleAppStatusChange,
  app_uninstalled: handleAppUninstalled,
  'auth.user_access_token.revoked_v4': handleUserTokenRevoked,
};
