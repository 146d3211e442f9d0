import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Failed events by state, as the database has them now (EventsService supplies the count). */
export interface FailedEventCounts {
  retrying: number;
  given_up: number;
}

/** A scrape reuses a count this recent (and concurrent scrapes share one query): /metrics is public. */
const FAILED_EVENTS_MAX_AGE_MS = 2_000;

/** One registry per app instance, so tests can build many apps in one process. */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'larksync_' });
  let failedEventsSource: (() => Promise<FailedEventCounts>) | undefined;
  let failedEventsRead: { at: number; value: Promise<FailedEventCounts> } | undefined;
  const readFailedEvents = (): Promise<FailedEventCounts> | undefined => {
    if (!failedEventsSource) return undefined;
    if (!failedEventsRead || performance.now() - failedEventsRead.at > FAILED_EVENTS_MAX_AGE_MS) {
      failedEventsRead = { at: performance.now(), value: failedEventsSource() };
    }
    return failedEventsRead.value;
  };
  let grantsSource: (() => Promise<Record<string, number>>) | undefined;
  let grantsRead: { at: number; value: Promise<Record<string, number>> } | undefined;
  return {
    registry,
    /** Where the user-grants gauge reads its counts (set once the database is known). */
    watchGrants(source: () => Promise<Record<string, number>>): void {
      grantsSource = source;
      grantsRead = undefined;
    },
    userGrants: new Gauge({
      name: 'larksync_user_grants',
      help: "Users' authorizations by status: active, needs_reauth (the user must sign in again; never retried), revoked",
      labelNames: ['status'] as const,
      registers: [registry],
      // From the database at scrape time, like larksync_events_failed.
      async collect() {
        if (!grantsSource) return;
        if (!grantsRead || performance.now() - grantsRead.at > FAILED_EVENTS_MAX_AGE_MS) grantsRead = { at: performance.now(), value: grantsSource() };
        try {
          const counts = await grantsRead.value;
          for (const status of ['active', 'needs_reauth', 'revoked']) this.set({ status }, counts[status] ?? 0);
        } catch {
          grantsRead = undefined;
        }
      },
    }),
    /** Where the failed-events gauge reads its counts (set once the database is known). */
    watchFailedEvents(source: () => Promise<FailedEventCounts>): void {
      failedEventsSource = source;
      failedEventsRead = undefined;
    },
    eventsFailed: new Gauge({
      name: 'larksync_events_failed',
      help:
        'Stored events whose processing failed, now: retrying (attempts left; a job or the minute sweep retries them) ' +
        'or given_up (no attempts left; lark_events.last_error says why)',
      labelNames: ['state'] as const,
      registers: [registry],
      // Read from the database at scrape time, so every replica reports the same truth however
      // the events failed (a counter per process would lose them with the process).
      async collect() {
        const read = readFailedEvents();
        if (!read) return;
        try {
          const counts = await read;
          this.set({ state: 'retrying' }, counts.retrying);
          this.set({ state: 'given_up' }, counts.given_up);
        } catch {
          // Database unreachable: keep the last values rather than fail the whole scrape.
          failedEventsRead = undefined;
        }
      },
    }),
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
    sinkCalls: new Counter({
      name: 'larksync_sink_calls_total',
      help: 'Calls to knowledge-base sinks, by sink type, operation and outcome (ok, http_<status>, transport_error, redirect, body_too_large); RAGFlow errors are HTTP 200 with a code, counted as ok here',
      labelNames: ['type', 'op', 'outcome'] as const,
      registers: [registry],
    }),
    sinkDocuments: new Counter({
      name: 'larksync_sink_documents_total',
      help: 'Lark documents settled in a knowledge-base sink, by sink type and outcome (delivered, deleted, failed)',
      labelNames: ['type', 'outcome'] as const,
      registers: [registry],
    }),
    sinkDeliveries: new Counter({
      name: 'larksync_sink_backoffs_total',
      help: 'Deliveries that stopped to back off, by sink type and why (unavailable: unreachable or failing; refused: key, dataset or URL to fix)',
      labelNames: ['type', 'outcome'] as const,
      registers: [registry],
    }),
    upstreamLatency: new Histogram({
      name: 'larksync_upstream_call_seconds',
      help: 'Latency of calls to the Lark Open API',
      labelNames: ['endpoint'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    webhookAttempts: new Counter({
      name: 'larksync_webhook_attempts_total',
      help: 'Webhook delivery attempts, by outcome: delivered, failed (retried later), gave_up (not delivered within the retry window)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    webhookLatency: new Histogram({
      name: 'larksync_webhook_attempt_seconds',
      help: 'Time from sending a webhook delivery to its answer (or failure)',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    webhookLag: new Histogram({
      name: 'larksync_webhook_delivery_lag_seconds',
      help: 'Time from the event (its transaction) to the delivery that succeeded',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300, 3600],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
