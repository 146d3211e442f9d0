import { encodeCursor } from '../sync/records.service.js';
import type { RecordsChangedData } from './emit.js';
import type { WebhookEventType } from './event-types.js';

/** A stored event as the payload builder reads it. */
export interface StoredEvent {
  type: WebhookEventType;
  tenantKey: string;
  data: Record<string, unknown>;
  occurredAt: Date;
}

const position = (p: { xid: string; seq: string }) => ({ xid: BigInt(p.xid), seq: BigInt(p.seq) });
const before = (a: { xid: string; seq: string }, b: { xid: string; seq: string }) => {
  const pa = position(a);
  const pb = position(b);
  return pa.xid < pb.xid || (pa.xid === pb.xid && pa.seq < pb.seq);
};

/**
 * Several records.changed events of one stream as one: the rows they changed counted together, the
 * feed range from the earliest start to the latest end (positions compare as the feed orders them).
 */
export function mergeRecordsChanged(events: RecordsChangedData[]): RecordsChangedData {
  const [first, ...rest] = events;
  if (!first) throw new Error('nothing to merge');
  return rest.reduce<RecordsChangedData>(
    (acc, e) => ({
      stream: acc.stream,
      count: acc.count + e.count,
      from: before(e.from, acc.from) ? e.from : acc.from,
      to: before(acc.to, e.to) ? e.to : acc.to,
    }),
    first,
  );
}

/**
 * The body sent, as Standard Webhooks lays it out: `{ type, timestamp, data }`. Every event's data
 * names its tenant. records.changed carries cursors of the records feed: read
 * `GET /api/v1/tenants/{tenantKey}/streams/{stream}/records?cursor=<after>` until a record's
 * position passes `upTo` (or simply on from the cursor you keep).
 */
export function buildPayload(event: StoredEvent, merged?: { data: RecordsChangedData; events: number; lastAt: Date }): string {
  if (event.type === 'records.changed') {
    const d = merged?.data ?? (event.data as unknown as RecordsChangedData);
    return JSON.stringify({
      type: event.type,
      timestamp: (merged?.lastAt ?? event.occurredAt).toISOString(),
      data: {
        tenantKey: event.tenantKey,
        stream: d.stream,
        count: d.count,
        cursor: { after: encodeCursor(position(d.from)), upTo: encodeCursor(position(d.to)) },
        events: merged?.events ?? 1,
      },
    });
  }
  return JSON.stringify({ type: event.type, timestamp: event.occurredAt.toISOString(), data: { tenantKey: event.tenantKey, ...event.data } });
}
