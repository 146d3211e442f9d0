import { Type } from '@sinclair/typebox';
import type { DocsReads } from './docs-reads.js';
import { createHash } from 'node:crypto';
import { textChunks } from '../../runtime/text-chunks.js';
import { SyncError, isItemFailure } from '../../sync/sync-errors.js';
import { definePhase, type ChildScope, type PageResult, type SyncContext } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import type { ItemError } from '../../sync/sync.tables.js';
import { filterOf, inScope, sourcesOf, type DocsConfigType, type DocsFilter } from './config.js';
import type { StoredDocument, StoredNode } from './docs-reads.js';
import { GONE_CODES, MAX_ITEM_ERRORS, accessHint } from './errors.js';
import { settled } from './edit-second.js';
import { docxRevision, fetchDocx, fetchExport, type Fetched } from './fetch.js';

type Ctx = SyncContext<DocsConfigType, DocsReads>;

/**
 * Documents whose body is fetched per page: about two seconds of the 5/s content budget, so the
 * moment between two pages (the last answer, the next read) is small next to a page.
 */
const FETCHES_PER_PAGE = 10;
/** Documents (obj_tokens) read from the database per page. */
const DOCS_PER_READ = 200;


interface State {
  v: 1;
  /** the partitions of the configured sources when the run started */
  partitions: string[];
  step: 'content' | 'finish';
  /** the last document (obj_token) handled */
  after: string | null;
  itemErrors: number;
  /** the document before failed because Lark kept failing */
  lastUnavailable: boolean;
}

/**
 * SHA-256 (hex) of a text's UTF-8, fed 256K UTF-16 units at a time: `update` encodes its string
 * whole, 10-30 MB for an oversize page. The digest is the whole text's.
 */
function sha256(text: string): string {
  const h = createHash('sha256');
  for (const chunk of textChunks(text, 256 * 1024)) h.update(chunk);
  return h.digest('hex');
}

const MIME: Record<string, string> = {
  pdf: 'application/pdf',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ppt: 'application/vnd.ms-powerpoint',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  txt: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  zip: 'application/zip',
};
/** Drive lists no MIME type: it is guessed from the file name's extension. */
const mimeOf = (name: string) => MIME[/\.([A-Za-z0-9]+)$/.exec(name)?.[1]?.toLowerCase() ?? ''] ?? 'application/octet-stream';

/** Whether a stored body can be checked by its revision (a docx read with one) rather than read again. */
const verifiable = (objType: string | null, revision: number | null) => objType === 'docx' && revision !== null;

/** Whether the docx is still at the revision its stored body was read at (one docx.document.get); false when that cannot tell. */
export async function sameRevision(ctx: Pick<Ctx, 'lark'>, objType: string | null, token: string, revision: number | null): Promise<boolean> {
  return verifiable(objType, revision) && (await docxRevision(ctx, token)) === revision;
}

/** The node a document's row takes its path from: the first in scope by (path, token), as read. */
export const chosenNode = (doc: StoredDocument, filter: DocsFilter): StoredNode | undefined =>
  doc.nodes.find((n) => inScope(filter, n.objType ?? '', n.path ?? ''));

/**
 * What a document needs: its body fetched (new, edited since stored, or stored as deleted), its
 * row rewritten without a content call (moved or renamed only: path, title or URL differ), or
 * nothing. The edit time is the listing's (wiki obj_edit_time, Drive modified_time, metas
 * latest_modify_time); a listing without one refetches only documents never stored.
 */
export function decide(doc: StoredDocument, node: StoredNode): 'fetch' | 'verify' | 'rewrite' | 'none' {
  const stored = doc.content;
  if (!stored || stored.deleted) return 'fetch';
  if (node.editedTime && (!stored.editedTime || node.editedTime > stored.editedTime)) return 'fetch';
  // Read in its edit's second (edit-second.ts): a docx with a revision is checked by it, anything
  // else read again.
  if (stored.unsettled) return verifiable(node.objType, stored.revision) ? 'verify' : 'fetch';
  if (stored.path !== node.path || stored.title !== node.title || stored.url !== node.url || stored.objType !== node.objType) return 'rewrite';
  return 'none';
}

export function markdownRow(objToken: string, node: StoredNode, fetched: Fetched): StreamRow {
  return {
    recordKey: objToken,
    partition: node.partition,
    // Lark's listing of the node the row describes; the body is in `markdown`, not repeated here.
    raw: { node: node.raw, via: fetched.via, ...(settled(node.editedTime, fetched.startedAt) ? {} : { unsettled: true }) },
    columns: {
      token: objToken,
      obj_type: node.objType,
      format: 'markdown',
      title: node.title,
      path: node.path,
      url: node.url,
      markdown: fetched.markdown,
      file: null,
      size: Buffer.byteLength(fetched.markdown, 'utf8'),
      body_hash: sha256(fetched.markdown),
      edited_time: node.editedTime,
      revision: fetched.revision,
    },
  };
}

/**
 * An uploaded file: metadata only (the sink downloads it with GET /drive/v1/files/:token/download
 * when it delivers). Drive's listing gives no size (null); the body hash stands for the version.
 */
export function fileRow(objToken: string, node: StoredNode): StreamRow {
  const name = node.title ?? objToken;
  return {
    recordKey: objToken,
    partition: node.partition,
    raw: { node: node.raw },
    columns: {
      token: objToken,
      obj_type: node.objType,
      format: 'file',
      title: node.title,
      path: node.path,
      url: node.url,
      markdown: null,
      file: { name, mime: mimeOf(name), size: null, token: objToken },
      size: null,
      body_hash: sha256(`file:${objToken}:${node.editedTime ?? ''}:`),
      edited_time: node.editedTime,
      revision: null,
    },
  };
}

export async function fetchBody(ctx: Pick<Ctx, 'lark'>, objToken: string, objType: string): Promise<Fetched> {
  if (objType === 'docx') return fetchDocx(ctx, objToken);
  if (objType === 'doc' || objType === 'sheet' || objType === 'bitable') return fetchExport(ctx, objToken, objType);
  throw new SyncError('invalid_config', `documents of type ${objType} cannot be read`);
}

/** One page: up to FETCHES_PER_PAGE bodies fetched, and any number of rows rewritten or unchanged. */
async function contentPage(ctx: Ctx, state: State, filter: DocsFilter): Promise<PageResult<State>> {
  const docs = await ctx.moduleReads.documents(state.partitions, state.after, DOCS_PER_READ);
  const toFetch: Array<{ doc: StoredDocument; node: StoredNode; verify: boolean }> = [];
  const toRewrite: Array<{ doc: StoredDocument; node: StoredNode }> = [];
  const rows: StreamRow[] = [];
  let after = state.after;
  let reachedEnd = docs.length < DOCS_PER_READ;
  for (const doc of docs) {
    const node = chosenNode(doc, filter);
    const action = node ? decide(doc, node) : 'none';
    if (node && action !== 'none') {
      if (node.objType === 'file') rows.push(fileRow(doc.objToken, node));
      else if (action === 'rewrite') toRewrite.push({ doc, node });
      else {
        if (toFetch.length >= FETCHES_PER_PAGE) {
          reachedEnd = false;
          break;
        }
        toFetch.push({ doc, node, verify: action === 'verify' });
      }
    }
    after = doc.objToken;
  }

  const itemErrors: ItemError[] = [];
  let lastUnavailable = state.lastUnavailable;
  // The bodies go at once: the pacer keeps each API to its rate, and Lark's latency overlaps. A
  // document to verify is read again only when its revision moved; otherwise its row is settled.
  const settledRows: Array<{ doc: StoredDocument; node: StoredNode }> = [];
  const results = await Promise.allSettled(
    toFetch.map(async ({ doc, node, verify }) => {
      if (verify && (await sameRevision(ctx, node.objType, doc.objToken, doc.content?.revision ?? null))) {
        settledRows.push({ doc, node });
        return undefined;
      }
      return fetchBody(ctx, doc.objToken, node.objType ?? 'docx');
    }),
  );

  // Moved or renamed only: the stored body is kept, the row gets its new path, title and URL (and
  // a verified row loses its mark).
  const rewrites = [...toRewrite, ...settledRows];
  const stored = await ctx.moduleReads.contents(rewrites.map((r) => r.doc.objToken));
  for (const { doc, node } of rewrites) {
    const s = stored.get(doc.objToken);
    if (!s) continue;
    const { unsettled: _verified, ...kept } = typeof s.raw === 'object' && s.raw !== null ? (s.raw as Record<string, unknown>) : {};
    const raw = { ...kept, node: node.raw };
    rows.push({ recordKey: doc.objToken, partition: node.partition, raw, columns: { ...s.columns, title: node.title, path: node.path, url: node.url, obj_type: node.objType } });
  }

  results.forEach((res, i) => {
    const { doc, node } = toFetch[i]!;
    if (res.status === 'fulfilled') {
      if (res.value) rows.push(markdownRow(doc.objToken, node, res.value));
      lastUnavailable = false;
      return;
    }
    const err = res.reason;
    if (err instanceof SyncError && err.larkCode !== undefined && GONE_CODES.has(err.larkCode)) {
      // Deleted since it was listed: the next listing misses it and its deletion is confirmed then.
      ctx.log.info({ runId: ctx.runId, document: doc.objToken, code: err.larkCode }, 'docs document gone since it was listed');
      return;
    }
    if (!isItemFailure(err, { unavailable: !lastUnavailable })) throw err;
    lastUnavailable = err.errorClass === 'upstream_unavailable' || err.errorClass === 'upstream_refused';
    if (state.itemErrors + itemErrors.length >= MAX_ITEM_ERRORS) return;
    const hint = err.errorClass === 'permission_denied' ? `; ${accessHint('doc', ctx.config)}` : '';
    itemErrors.push({ item: 'docs_document', id: doc.objToken, errorClass: err.errorClass, message: `document ${doc.objToken} (${node.path ?? ''}): ${err.message}${hint}` });
  });

  const next: State = { ...state, after, itemErrors: state.itemErrors + itemErrors.length, lastUnavailable, step: reachedEnd ? 'finish' : 'content' };
  return { rows: { docs_content: rows }, state: next, done: false, itemErrors };
}

/**
 * After every document was looked at: rows of documents no longer in scope go. A document is in
 * scope while one of its live nodes in a configured source passes include, exclude and types;
 * nodes go only once their absence is certain (the listing's deletion check), so a document whose
 * source failed this run is kept. Nodes of sources no longer configured go as well.
 */
async function finish(ctx: Ctx, state: State, filter: DocsFilter): Promise<PageResult<State>> {
  const keep: string[] = [];
  let after: string | null = null;
  for (;;) {
    const docs = await ctx.moduleReads.documents(state.partitions, after, 1000);
    for (const doc of docs) if (chosenNode(doc, filter)) keep.push(doc.objToken);
    if (docs.length < 1000) break;
    after = docs.at(-1)!.objToken;
  }
  const scopes: ChildScope[] = [
    { stream: 'docs_content', column: 'format', value: 'markdown', keys: keep },
    { stream: 'docs_content', column: 'format', value: 'file', keys: keep },
  ];
  for (const p of await ctx.moduleReads.nodePartitions()) {
    if (!state.partitions.includes(p)) scopes.push({ stream: 'docs_nodes', column: 'source', value: p, keys: [] });
  }
  return { rows: {}, state, done: true, replaceChildren: scopes };
}

/**
 * Brings docs_content up to date with docs_nodes: one row per document, its body fetched only when
 * the listing shows it new or edited since stored (a run without changes makes no content call),
 * its row rewritten without a call when only its path, title or URL changed, and rows out of
 * scope removed at the end.
 */
export const contentPhase = definePhase<State, DocsConfigType, DocsReads>({
  name: 'docs_content',
  stateSchema: Type.Object({
    v: Type.Literal(1),
    partitions: Type.Array(Type.String()),
    step: Type.Union([Type.Literal('content'), Type.Literal('finish')]),
    after: Type.Union([Type.String(), Type.Null()]),
    itemErrors: Type.Integer({ minimum: 0 }),
    lastUnavailable: Type.Boolean(),
  }),
  init: (ctx) => ({
    v: 1,
    partitions: sourcesOf(ctx.config).map((s) => s.partition),
    step: 'content',
    after: null,
    itemErrors: 0,
    lastUnavailable: false,
  }),
  async readPage(ctx, state) {
    const filter = filterOf(ctx.config);
    if (state.step === 'finish') return finish(ctx, state, filter);
    return contentPage(ctx, state, filter);
  },
  // A content page reads documents after `after` only, and the page before writes rows of
  // documents up to `after`: the next one can fetch while this one commits, which keeps the
  // content budget busy between pages. The final step waits for every commit before it.
  canReadAhead: (state) => state.step === 'content',
});
