import type { Task } from 'graphile-worker';
import type { SinksService } from './sinks.service.js';

function payloadOf(payload: unknown): { tenantKey: string; name: string } {
  // Queued jobs may come from older code: check the shape before trusting it.
  const p = payload as { tenantKey?: unknown; name?: unknown } | null;
  if (typeof p?.tenantKey !== 'string' || typeof p.name !== 'string') throw new Error('deliver_sink payload needs tenantKey and name');
  return { tenantKey: p.tenantKey, name: p.name };
}

/** One delivery job of one sink (bulk work: it runs in the sync runner, one job per sink at a time). */
export const deliverSinkTask =
  (sinks: SinksService): Task =>
  async (payload) => {
    const { tenantKey, name } = payloadOf(payload);
    await sinks.deliver(tenantKey, name);
  };

/** The minute cron: queues a delivery for every sink with work. */
export const queueSinkDeliveriesTask =
  (sinks: SinksService): Task =>
  async () => {
    await sinks.queueDue();
  };
