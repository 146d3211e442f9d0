import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per app instance, so tests can build many apps in one process. */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'larksync_' });
  return {
    registry,
    eventsReceived: new Counter({
      name: 'larksync_events_received_total',
      help: 'Lark pushes accepted and stored, by event type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    eventsRejected: new Counter({
      name: 'larksync_events_rejected_total',
      help: 'Lark pushes rejected before storage, by reason code',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    eventsDeduped: new Counter({
      name: 'larksync_events_deduped_total',
      help: 'Lark pushes acknowledged as redeliveries of an already stored event',
      registers: [registry],
    }),
    eventBatchSize: new Histogram({
      name: 'larksync_event_store_batch_size',
      help: 'Pushes stored per transaction by the event endpoint (group commit)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    eventsProcessed: new Counter({
      name: 'larksync_events_processed_total',
      help: 'Stored events processed, by type and outcome',
      labelNames: ['type', 'outcome'] as const,
      registers: [registry],
    }),
    tokenMints: new Counter({
      name: 'larksync_token_mints_total',
      help: 'Upstream token mint attempts, by token kind and outcome',
      labelNames: ['kind', 'outcome'] as const,
      registers: [registry],
    }),
    ticketResends: new Counter({
      name: 'larksync_ticket_resends_total',
      help: 'app_ticket resend requests sent upstream',
      registers: [registry],
    }),
    upstreamCalls: new Counter({
      name: 'larksync_upstream_calls_total',
      help: 'Calls to the Lark Open API, by endpoint and Lark code (known codes; other, http_<status>, transport_error, redirect, body_too_large)',
      labelNames: ['endpoint', 'code'] as const,
      registers: [registry],
    }),
    syncRuns: new Counter({
      name: 'larksync_sync_runs_total',
      help: 'Sync runs that ended, by module and status (succeeded, failed, by error class)',
      labelNames: ['module', 'status', 'error_class'] as const,
      registers: [registry],
    }),
    syncRows: new Counter({
      name: 'larksync_sync_rows_total',
      help: 'Rows read from Lark and committed, by stream',
      labelNames: ['stream'] as const,
      registers: [registry],
    }),
    syncThrottledWaits: new Counter({
      name: 'larksync_sync_throttled_waits_total',
      help: 'Waits after Lark throttled a sync call (429, 99991400, 1254290, ...)',
      registers: [registry],
    }),
    upstreamLatency: new Histogram({
      name: 'larksync_upstream_call_seconds',
      help: 'Latency of calls to the Lark Open API',
      labelNames: ['endpoint'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
