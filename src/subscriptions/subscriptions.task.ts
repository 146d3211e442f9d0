import type { Task } from 'graphile-worker';
import type { Logger } from 'pino';
import type { SubscriptionsService } from './subscriptions.service.js';

/**
 * The job of one tenant's subscriptions. It never throws for what Lark answers (each row keeps its
 * own backoff, and the job queues itself again when one is due); a failure around it (the
 * database, a token that cannot be minted) is left to graphile-worker's retry with backoff.
 */
export function subscriptionsTask(services: { subscriptions: SubscriptionsService; log: Logger }): Task {
  return async (payload) => {
    // Queued jobs may come from older code: check the shape first.
    const tenantKey = (payload as { tenantKey?: unknown } | null)?.tenantKey;
    if (typeof tenantKey !== 'string' || tenantKey.length === 0) throw new Error('manage_subscriptions payload needs tenantKey');
    const result = await services.subscriptions.runJob(tenantKey);
    if (result.calls > 0) services.log.debug({ tenantKey, calls: result.calls }, 'change-event subscriptions brought in line');
  };
}
