import type { TaskList } from 'graphile-worker';
import { purgeEventsOlderThan } from '../events/events.repository.js';
import type { Services } from '../services.js';

/** Days to keep processed events: far beyond Lark's ~7 h redelivery window. */
export const EVENT_RETENTION_DAYS = 7;

function eventIdOf(payload: unknown): string {
  // Queued jobs may come from older code: check the shape before trusting it.
  const id = (payload as { id?: unknown } | null)?.id;
  if (typeof id !== 'string' || !/^\d+$/.test(id)) throw new Error('handle_lark_event payload needs a numeric string id');
  return id;
}

export function createTaskList(services: Services): TaskList {
  return {
    handle_lark_event: async (payload) => {
      await services.events.process(services, eventIdOf(payload));
    },
    refresh_tokens: async () => {
      await services.tokens.refreshDue();
    },
    purge_events: async () => {
      await purgeEventsOlderThan(services.db, EVENT_RETENTION_DAYS);
    },
  };
}

/** Every minute one process (whichever wins graphile-worker's cron lock) refreshes due tokens. */
export const CRONTAB = ['* * * * * refresh_tokens ?max=1', '17 3 * * * purge_events ?max=1'].join('\n');
