import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { Sealer } from '../crypto/sealer.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ParsedPush } from './parse-push.js';
import { eventContext, findEvent, markEvent, storeAndEnqueue } from './events.repository.js';
import { eventHandlers } from './dispatch.js';
import type { Services } from '../services.js';

type ParsedEvent = Extract<ParsedPush, { kind: 'event' }>;

/** graphile-worker refuses queue names over 128 characters (add_job raises). */
const MAX_QUEUE_NAME = 128;

/** Jobs of one tenant run one at a time, so app_open, status changes and uninstall apply in order. */
export function queueFor(e: { eventType: string; tenantKey: string | null; appId: string | null }): string {
  const name = e.tenantKey ? `tenant:${e.tenantKey}` : `app:${e.appId ?? 'unknown'}`;
  if (name.length <= MAX_QUEUE_NAME) return name;
  // An over-long key from the push would otherwise fail every store attempt: a 500 for each of
  // Lark's retries and the event lost. A digest keeps one queue per key.
  return `${e.tenantKey ? 'tenant' : 'app'}#${createHash('sha256').update(name).digest('hex')}`;
}

export class EventsService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly metrics: Metrics,
  ) {}

  /** The request path: seal, store, queue. No Lark calls here, so the 3 s budget is ours. */
  async ingest(e: ParsedEvent): Promise<'stored' | 'duplicate'> {
    const outcome = await storeAndEnqueue(
      this.db,
      {
        eventId: e.eventId,
        appId: e.appId,
        schemaVersion: e.schemaVersion,
        eventType: e.eventType,
        tenantKey: e.tenantKey,
        payloadSealed: this.sealer.seal(e.plaintext, eventContext(e.eventId)),
      },
      queueFor(e),
    );
    if (outcome === 'stored') this.metrics.eventsReceived.inc({ type: e.eventType });
    else this.metrics.eventsDeduped.inc();
    return outcome;
  }

  /** Applies stored app_ticket pushes of this app that are still pending, oldest first. */
  async applyPendingTickets(services: Services, appId: string): Promise<void> {
    const pending = await this.db
      .selectFrom('lark_events')
      .select('id')
      .where('event_type', '=', 'app_ticket')
      .where('app_id', '=', appId)
      .where('status', '=', 'pending')
      .orderBy('id')
      .limit(5)
      .execute();
    for (const row of pending) await this.process(services, row.id);
  }

  /** The job: re-read the stored row, open it and apply it. Safe to run more than once. */
  async process(services: Services, id: string): Promise<'processed' | 'ignored' | 'missing'> {
    const row = await findEvent(this.db, id);
    if (!row) return 'missing';
    if (row.status === 'processed' || row.status === 'ignored') return row.status;
    const handler = eventHandlers[row.event_type];
    const storeAppId = services.config.storeApp?.appId;
    let outcome: 'processed' | 'ignored' = 'ignored';
    try {
      // Inside the try: a row that no longer opens (e.g. its sealing key was dropped) must show up
      // as failed with a reason, not sit pending while its job retries.
      const body = JSON.parse(this.sealer.open(row.payload_sealed, eventContext(row.event_id))) as Record<string, unknown>;
      const envelope = row.schema_version === 'v2' ? ((body.header ?? {}) as Record<string, unknown>) : body;
      const event = (body.event ?? {}) as Record<string, unknown>;
      // Pushes for another app id (a misrouted console setting) are kept but not applied.
      if (handler && (!row.app_id || !storeAppId || row.app_id === storeAppId)) {
        outcome = await handler(event, {
          services,
          eventId: row.event_id,
          appId: row.app_id,
          tenantKey: row.tenant_key,
          pushedAt: pushTime(row.schema_version, envelope) ?? row.received_at,
        });
      }
    } catch (err) {
      await markEvent(this.db, id, 'failed', (err as Error).message.slice(0, 500));
      this.metrics.eventsProcessed.inc({ type: row.event_type, outcome: 'failed' });
      throw err;
    }
    await markEvent(this.db, id, outcome, null);
    this.metrics.eventsProcessed.inc({ type: row.event_type, outcome });
    return outcome;
  }
}

function pushTime(version: 'v1' | 'v2', envelope: Record<string, unknown>): Date | undefined {
  const raw = version === 'v1' ? Number(envelope.ts) * 1000 : Number(envelope.create_time);
  return Number.isFinite(raw) && raw > 0 ? new Date(raw) : undefined;
}
