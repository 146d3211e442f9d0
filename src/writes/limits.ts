import { BASE_LIMITS, BASE_STREAMS } from '../connectors/base/index.js';
import { perSecond, type RateLimit } from '../sync/pacer.js';
import { streamCatalog } from '../sync/streams.js';

/**
 * The Lark APIs writes call: Base's reads (the same budgets the base module's syncs draw from,
 * so a write and a sync of one tenant never exceed them together) and the writes themselves.
 */
export const WRITE_LIMITS = {
  ...BASE_LIMITS,
  // Every record write call (create, update, delete, single or batch): 50/s per app per tenant
  // (corrections.md; older pages said 10). One call at a time per Base matters more (see writes/).
  'bitable.records.write': perSecond(50),
  // Drive media upload (attachments for Base writes): no tier in the notes (unconfirmed); 5/s.
  'drive.medias.upload': perSecond(5),
} satisfies Record<string, RateLimit>;

export type WriteApi = keyof typeof WRITE_LIMITS;

/** base_records as the base module declares it: written records are stored the way a sync stores them. */
export const BASE_RECORDS = streamCatalog([{ name: 'base', streams: BASE_STREAMS }]).spec('base_records');
