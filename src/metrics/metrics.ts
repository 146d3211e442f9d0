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
  return {
    registry,
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
