import type { SyncContext } from '../../sync/sync-module.js';
import type { DocsConfigType } from './config.js';
import type { DocsReads } from './docs-reads.js';
import type { LarkMetasAnswer } from './lark-types.js';

/** metas/batch_query takes 1 to 200 documents a call (docs-content.md §5.4). */
export const METAS_BATCH = 200;

/** One metas/batch_query call; `withUrl` asks for each document's URL too. */
export function batchQueryMetas(
  ctx: SyncContext<DocsConfigType, DocsReads>,
  docs: Array<{ doc_token: string; doc_type: string }>,
  opts: { withUrl?: boolean } = {},
): Promise<LarkMetasAnswer> {
  return ctx.lark.call<LarkMetasAnswer>('drive.metas.batch_query', {
    method: 'POST',
    path: '/open-apis/drive/v1/metas/batch_query',
    body: { request_docs: docs, ...(opts.withUrl ? { with_url: true } : {}) },
  });
}
