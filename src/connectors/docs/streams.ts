import { perMinute, perSecond, type RateLimit } from '../../sync/pacer.js';
import type { StreamDef } from '../../sync/streams.js';

/**
 * The docs module's streams (public contract) and Lark rate limits (its module definition
 * declares them; the registry merges them with the other modules').
 *
 * - `docs_nodes`: one row per listed node (a wiki node_token or a Drive file token), partitioned by
 *   the source it was listed from (`wiki:<space_id>`, `node:<node_token>`, `folder:<token>`,
 *   `doc:<token>`, the same as its `source` column).
 * - `docs_content`: one row per Lark document (key: obj_token), however many nodes reach it; its
 *   path is the smallest of theirs (by path, then node token), so it does not flip between runs.
 */
export const DOCS_STREAMS = {
  docs_nodes: {
    columns: ['token', 'obj_token', 'obj_type', 'title', 'path', 'url', 'parent_token', 'owner_id', 'created_time', 'edited_time', 'source'],
    types: { created_time: 'timestamptz', edited_time: 'timestamptz' },
  },
  docs_content: {
    columns: ['token', 'obj_type', 'format', 'title', 'path', 'url', 'markdown', 'file', 'size', 'body_hash', 'edited_time', 'revision'],
    types: { file: 'jsonb', size: 'integer', edited_time: 'timestamptz', revision: 'integer' },
  },
} as const satisfies Record<string, StreamDef>;

/**
 * The content family's 5/s per app, paced at 4.6/s rather than perSecond(5)'s 4/s: the content
 * calls are what a first sync waits on, and 4/s would cap it at 80 % of Lark's ceiling. A bucket
 * of one token refilled at r/s lets through at most 1 + floor(r) calls in any one-second window
 * (the stored token plus whole refills), so 4.6/s still never puts a sixth call in a second; the
 * 0.4/s left over absorbs network jitter bunching calls on their way (a call Lark refuses anyway
 * waits for its reset and is sent again).
 */
const FIVE_PER_SECOND_PER_APP: RateLimit = { perSecond: 4.6, burst: 1, scope: 'app' };

/**
 * Lark's limits for the calls this module makes (docs-wiki.md, docs-content.md, corrections.md).
 * The docx/docs content family allows 5/s "per app"; whether per tenant as well is unconfirmed, so
 * the safe reading is taken: one budget for the app, shared by all its tenants (`scope: 'app'`).
 * `wiki.get_node` is declared with the Base module's limit (one budget, the same tier).
 */
export const DOCS_LIMITS = {
  // docs-content.md §5.1: 5/s.
  'docs.content': FIVE_PER_SECOND_PER_APP,
  // docs-content.md §5.3 / §5.4: 5/s per app (revision_id, and the blocks fallback for > 10 MB).
  'docx.document.get': FIVE_PER_SECOND_PER_APP,
  'docx.blocks': FIVE_PER_SECOND_PER_APP,
  // corrections.md: 20/s.
  'drive.files.list': perSecond(20),
  // docs-content.md §5.4: 1000/min and 50/s; 200 documents a call.
  'drive.metas.batch_query': perMinute(1000, 20),
  // Wiki listings: not in the notes; Lark's page for listing a node's children says 100/min
  // (接口频率限制 100 次/分钟); spaces.list and get_node are taken to share that tier (unconfirmed).
  'wiki.spaces.list': perMinute(100, 5),
  'wiki.nodes.list': perMinute(100, 5),
  // Export tasks and their downloads (legacy docs, sheets, Bases): no limit in the notes
  // (unconfirmed); kept well below the docx family's 5/s.
  'drive.export.create': perMinute(100, 5),
  'drive.export.get': perSecond(5),
  'drive.export.download': perSecond(5),
  // Resolving wiki URLs: the same tier the Base module declares for it (one budget).
  'wiki.get_node': perMinute(100, 5),
} as const satisfies Record<string, RateLimit>;

export type DocsApiName = keyof typeof DOCS_LIMITS;
