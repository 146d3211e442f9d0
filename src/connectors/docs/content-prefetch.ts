import { SyncError } from '../../sync/sync-errors.js';
import type { SyncContext } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import type { DocsConfigType, DocsFilter } from './config.js';
import { chosenNode, decide, fetchBody, markdownRow } from './content.phase.js';
import type { DocsReads } from './docs-reads.js';

type Ctx = SyncContext<DocsConfigType, DocsReads>;

/**
 * Documents listed and not yet read, kept in the listing's state (27-character tokens: about
 * 12 KB at most). Beyond this the content phase reads them after the listing, as it reads any
 * document the listing's pages left.
 */
export const PREFETCH_QUEUE = 400;
/** Reads in flight at once while a listing call waits: enough to keep the 5/s budget busy. */
const WORKERS = 2;
/** Stored state read for this many queued documents a page (one query). */
const LOOKAHEAD = 12;

/** Kinds read between listing calls: docx only (an export task of a sheet or a legacy doc polls for seconds). */
export const prefetchable = (objType: unknown) => objType === 'docx';

/**
 * Reads the bodies of documents an earlier page listed (their nodes are committed: the listing
 * does not read ahead) while `listing` — the page's own listing call, which waits on the wiki's
 * 100/min — is in flight: the content budget (5/s) then works during the listing instead of after
 * it. A new read starts only while the listing is still out, so a page lasts about as long as its
 * listing call. Returns the rows and how many queued documents were taken (read, or needing no
 * read). A failed read is left to the content phase, which reads every document the listing
 * leaves unread and records its error; only failures that stop the slice (throttled past it,
 * cancelled) are thrown.
 */
export async function readWhileListing(
  ctx: Ctx,
  partitions: string[],
  queue: readonly string[],
  filter: DocsFilter,
  listing: Promise<unknown>,
): Promise<{ rows: StreamRow[]; taken: number }> {
  if (queue.length === 0) return { rows: [], taken: 0 };
  let listed = false;
  void listing.then(
    () => (listed = true),
    () => (listed = true),
  );
  const docs = await ctx.moduleReads.documentsByToken(partitions, queue.slice(0, LOOKAHEAD));
  const byToken = new Map(docs.map((d) => [d.objToken, d]));
  const rows: StreamRow[] = [];
  let next = 0;
  const limit = Math.min(queue.length, LOOKAHEAD);
  const worker = async () => {
    while (!listed && next < limit) {
      const token = queue[next]!;
      next += 1;
      const doc = byToken.get(token);
      const node = doc ? chosenNode(doc, filter) : undefined;
      if (!doc || !node || !prefetchable(node.objType) || decide(doc, node) !== 'fetch') continue;
      try {
        rows.push(markdownRow(token, node, await fetchBody(ctx, token, 'docx')));
      } catch (err) {
        if (!(err instanceof SyncError)) throw err;
        ctx.log.debug({ runId: ctx.runId, document: token, errorClass: err.errorClass }, 'docs read during the listing failed: the content phase reads it again');
      }
    }
  };
  await Promise.all([listing.catch(() => undefined), ...Array.from({ length: WORKERS }, worker)]);
  return { rows, taken: next };
}
