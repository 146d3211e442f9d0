import { Type } from '@sinclair/typebox';
import type { DocsReads } from './docs-reads.js';
import { SyncError, isItemFailure } from '../../sync/sync-errors.js';
import { definePhase, type ChildScope, type PageResult, type SyncContext } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import type { ItemError } from '../../sync/sync.tables.js';
import { filterOf, inScope, rootTokenOf, sourcesOf, type DocsConfigType, type DocsFilter, type DocsSource } from './config.js';
import { MAX_ITEM_ERRORS, accessHint, describeSource, explain } from './errors.js';
import { PREFETCH_QUEUE, prefetchable, readWhileListing } from './content-prefetch.js';
import { checkKnown } from './known-check.js';
import { METAS_BATCH, batchQueryMetas } from './metas.js';
import { DEFAULT_TREE_REFRESH_MINUTES, scopeKeyOf, structureDue } from './tree-refresh.js';
import {
  META_FORBIDDEN,
  META_GONE,
  type LarkDriveFilesPage,
  type LarkWikiNode,
  type LarkWikiNodesPage,
  type LarkWikiSpacesPage,
} from './lark-types.js';
import { driveFileRow, joinPath, metaRow, wikiNodeRow } from './rows.js';

type Ctx = SyncContext<DocsConfigType, DocsReads>;

/** Lark's maxima: wiki nodes 50 a page (docs-wiki.md §2.2), Drive files 200 (§1), metas 200 documents (docs-content.md §5.4). */
const WIKI_PAGE = 50;
const DRIVE_PAGE = 200;

/** A node or folder still to list: its token ('' = a space's top level), the path down to it, the page reached. */
interface Frame {
  parent: string;
  path: string;
  pageToken: string | null;
}

/** Progress through one source. */
interface Walk {
  step: 'open' | 'list' | 'confirm';
  /** wiki walks: the space */
  spaceId: string | null;
  /** nodes and folders still to list, first in first out */
  frames: Frame[];
  /** false once a listing ended early (has_more without a token): no deletions are judged */
  complete: boolean;
  /** in `confirm`: the last candidate read back */
  confirmAfter: string | null;
}

interface State {
  v: 2;
  /** the sources as they were when the run started, so a resumed run walks the same list */
  sources: DocsSource[];
  /** single-document sources are read first, together, through metas: the next one to read */
  docIndex: number;
  /** then the check pass over the known nodes of sources not listed this run (known-check.ts): over, and the last key read */
  checked: boolean;
  checkAfter: string | null;
  /** partitions whose tree this run lists (tree-refresh.ts); the check pass may add some */
  structure: string[];
  /** partition -> when its last complete tree listing started (ms); carried from run to run */
  listedAt: Record<string, number>;
  /** what include, exclude, types and identity were at the last listings (tree-refresh.ts) */
  scopeKey: string;
  /** when this run started (ms): a source whose tree listing completes is stamped with it */
  startedAt: number;
  /** docx listed by earlier pages and not yet read: read while the next listing calls wait (content-prefetch.ts) */
  prefetch: string[];
  /** the walked source (not a single document) being read */
  index: number;
  walk: Walk | null;
  /** wiki space id -> name, for paths (filled once a run) */
  spaceNames: Record<string, string> | null;
  sourcesOk: number;
  sourcesFailed: number;
  itemErrors: number;
  /** the source before this one failed because Lark kept failing */
  lastUnavailable: boolean;
}

const walked = (s: DocsSource) => s.kind !== 'doc';

/** Roots of the other sources: a walk does not enter them, the more specific source reads them. */
function otherRoots(state: State, self: DocsSource): Set<string> {
  const roots = new Set<string>();
  for (const s of state.sources) {
    const root = rootTokenOf(s);
    if (root && s.partition !== self.partition) roots.add(root);
  }
  return roots;
}

async function spaceNames(ctx: Ctx, state: State): Promise<Record<string, string>> {
  if (state.spaceNames) return state.spaceNames;
  const names: Record<string, string> = {};
  let pageToken: string | undefined;
  // Pages may be empty while has_more is true (docs-wiki.md §2.1): follow the token.
  for (let guard = 0; guard < 1000; guard += 1) {
    const data = await ctx.lark.call<LarkWikiSpacesPage>('wiki.spaces.list', {
      method: 'GET',
      path: '/open-apis/wiki/v2/spaces',
      query: { page_size: 50, page_token: pageToken },
    });
    for (const s of data.items ?? []) if (s.space_id) names[s.space_id] = s.name ?? s.space_id;
    if (!data.has_more || !data.page_token) break;
    pageToken = data.page_token;
  }
  state.spaceNames = names;
  return names;
}

async function getNode(ctx: Ctx, token: string): Promise<LarkWikiNode> {
  const data = await ctx.lark.call<{ node?: LarkWikiNode }>('wiki.get_node', {
    method: 'GET',
    path: '/open-apis/wiki/v2/spaces/get_node',
    query: { token, obj_type: 'wiki' },
  });
  if (!data.node?.node_token) throw new SyncError('not_found', `Lark returned no wiki node for ${token}`);
  return data.node;
}

/** Opens a walked source: its name and root for paths, and the first frame to list. */
async function openWalk(ctx: Ctx, state: State, source: DocsSource, filter: DocsFilter): Promise<{ walk: Walk; rows: StreamRow[] }> {
  const where = describeSource(source);
  if (source.kind === 'space') {
    // The path starts with the space's name. Lark lists only the spaces the reader is a member of,
    // and never a user's "My Library" (docs-wiki.md §2.1): a space it does not list is still tried
    // (named by its id), and a reader that may not open it gets 131006 from the node listing.
    const name = (await spaceNames(ctx, state))[source.spaceId] ?? source.spaceId;
    return { walk: { step: 'list', spaceId: source.spaceId, frames: [{ parent: '', path: name, pageToken: null }], complete: true, confirmAfter: null }, rows: [] };
  }
  if (source.kind === 'node') {
    const node = await getNode(ctx, source.nodeToken).catch((err: unknown) => {
      throw explain(err, where, 'node', ctx.config);
    });
    // The path runs from the space down: the names of the space and of the nodes above.
    const above: string[] = [];
    let parent = node.parent_node_token;
    for (let depth = 0; parent && depth < 60; depth += 1) {
      const up = await getNode(ctx, parent);
      above.unshift(up.title ?? '');
      parent = up.parent_node_token;
    }
    const spaceId = node.space_id ?? '';
    const space = (await spaceNames(ctx, state))[spaceId] ?? spaceId;
    const prefix = [space, ...above].reduce((p, t) => joinPath(p, t), '');
    const path = joinPath(prefix, node.title ?? '');
    const row = inScope(filter, node.obj_type ?? '', path) ? wikiNodeRow(node, path, source.partition) : undefined;
    const frames = node.has_child ? [{ parent: source.nodeToken, path, pageToken: null }] : [];
    return { walk: { step: 'list', spaceId, frames, complete: true, confirmAfter: null }, rows: row ? [row] : [] };
  }
  if (source.kind === 'folder') {
    const answer = await batchQueryMetas(ctx, [{ doc_token: source.folderToken, doc_type: 'folder' }], { withUrl: true });
    const meta = (answer.metas ?? []).find((m) => m.doc_token === source.folderToken);
    const failed = (answer.failed_list ?? []).find((f) => f.token === source.folderToken);
    if (!meta) {
      if (failed?.code === META_FORBIDDEN || failed === undefined) {
        throw new SyncError('permission_denied', `${where}: the reader may not open this folder (metas code ${failed?.code ?? 'none'}); ${accessHint('folder', ctx.config)}`, failed?.code);
      }
      throw new SyncError('not_found', `${where}: no such folder (metas code ${failed.code}); it was deleted or the token is wrong: fix or remove this source`, failed.code);
    }
    const name = meta.title ?? source.folderToken;
    return { walk: { step: 'list', spaceId: null, frames: [{ parent: source.folderToken, path: name, pageToken: null }], complete: true, confirmAfter: null }, rows: [] };
  }
  throw new SyncError('internal_error', `${where} is not walked`);
}

/** One page of the first frame: its rows, and the frames found in it. */
async function listPage(ctx: Ctx, state: State, source: DocsSource, walk: Walk, filter: DocsFilter): Promise<{ walk: Walk; rows: StreamRow[] }> {
  const [frame, ...rest] = walk.frames;
  if (!frame) return { walk, rows: [] };
  const skip = otherRoots(state, source);
  const rows: StreamRow[] = [];
  const found: Frame[] = [];
  let hasMore: boolean;
  let next: string | null;
  if (walk.spaceId !== null) {
    const data = await ctx.lark.call<LarkWikiNodesPage>('wiki.nodes.list', {
      method: 'GET',
      path: `/open-apis/wiki/v2/spaces/${encodeURIComponent(walk.spaceId)}/nodes`,
      endpoint: '/open-apis/wiki/v2/spaces/:space_id/nodes',
      query: { page_size: WIKI_PAGE, page_token: frame.pageToken ?? undefined, parent_node_token: frame.parent || undefined },
    });
    for (const node of data.items ?? []) {
      if (!node.node_token || skip.has(node.node_token)) continue;
      const path = joinPath(frame.path, node.title ?? '');
      if (inScope(filter, node.obj_type ?? '', path)) {
        const row = wikiNodeRow(node, path, source.partition);
        if (row) rows.push(row);
      }
      // Children are listed whatever the parent's own scope: an include pattern may match them only.
      if (node.has_child) found.push({ parent: node.node_token, path, pageToken: null });
    }
    hasMore = data.has_more === true;
    next = data.page_token || null;
  } else {
    const data = await ctx.lark.call<LarkDriveFilesPage>('drive.files.list', {
      method: 'GET',
      path: '/open-apis/drive/v1/files',
      // Oldest first by creation: a document created or edited while the folder is paged does not
      // shift the items not yet read (the default, newest edit first, would).
      query: { folder_token: frame.parent, page_size: DRIVE_PAGE, page_token: frame.pageToken ?? undefined, order_by: 'CreatedTime', direction: 'ASC' },
    });
    for (const file of data.files ?? []) {
      if (!file.token || skip.has(file.token)) continue;
      const path = joinPath(frame.path, file.name ?? '');
      if (file.type === 'folder') {
        found.push({ parent: file.token, path, pageToken: null });
        continue;
      }
      // A Drive shortcut points at a document kept elsewhere (and listed there if that place is a
      // source); its own listing carries the shortcut's times, not the document's: not taken.
      if (file.type === 'shortcut') continue;
      if (!inScope(filter, file.type ?? '', path)) continue;
      const row = driveFileRow(file, path, source.partition);
      if (row) rows.push(row);
    }
    hasMore = data.has_more === true;
    next = data.next_page_token || null;
  }
  let frames: Frame[];
  let complete = walk.complete;
  if (hasMore && next) frames = [{ ...frame, pageToken: next }, ...rest, ...found];
  else {
    // has_more without a token: Lark cut the listing short; what it did not show is unknown.
    if (hasMore) complete = false;
    frames = [...rest, ...found];
  }
  return { walk: { ...walk, frames, complete }, rows };
}

/**
 * Deletion candidates of a complete listing, read back: those out of scope now (include, exclude,
 * types), and those Lark names deleted or no longer readable (metas 970005 / 970003), are gone.
 * Those Lark still shows stay candidates: a node moved out of the source is missed by the next
 * complete listing too and then marked (the engine's 'relist' rule).
 */
async function confirmPage(ctx: Ctx, state: State, source: DocsSource, walk: Walk, filter: DocsFilter): Promise<PageResult<State>> {
  const keys = await ctx.read.deleteCandidates('docs_nodes', source.partition, walk.confirmAfter, METAS_BATCH);
  if (keys.length === 0) return finishSource(state, true);
  const stored = await ctx.moduleReads.nodes(keys);
  const deleted: string[] = [];
  const ask: Array<{ doc_token: string; doc_type: string }> = [];
  for (const key of keys) {
    const node = stored.get(key);
    if (!node || !inScope(filter, node.objType ?? '', node.path ?? '')) deleted.push(key);
    else ask.push({ doc_token: key, doc_type: source.kind === 'space' || source.kind === 'node' ? 'wiki' : (node.objType ?? 'docx') });
  }
  if (ask.length > 0) {
    const answer = await batchQueryMetas(ctx, ask, { withUrl: true });
    for (const f of answer.failed_list ?? []) {
      // 970005: deleted (trash or for good), or no such token; 970003: this reader may no longer open it.
      if (f.token && (f.code === META_GONE || f.code === META_FORBIDDEN)) deleted.push(f.token);
    }
  }
  const confirm = [{ stream: 'docs_nodes' as const, partition: source.partition, deleted, alive: [] }];
  if (keys.length < METAS_BATCH) return { ...finishSource(state, true), confirm };
  return { rows: {}, confirm, state: { ...state, walk: { ...walk, confirmAfter: keys.at(-1) ?? null } }, done: false };
}

function walkedSources(state: State): DocsSource[] {
  return state.sources.filter(walked);
}

/** Single-document sources read through metas this run (the others are in the check pass). */
function listedDocs(state: State): Array<Extract<DocsSource, { kind: 'doc' }>> {
  return state.sources.filter((s): s is Extract<DocsSource, { kind: 'doc' }> => s.kind === 'doc' && state.structure.includes(s.partition));
}

/**
 * The next walked source after `from` whose tree this run lists (the others were checked), or the
 * number of walked sources when none is left.
 */
function nextListed(state: State, from: number): number {
  const sources = walkedSources(state);
  let index = from;
  while (index < sources.length && !state.structure.includes(sources[index]!.partition)) index += 1;
  return index;
}

/** The source's walk is over; `listed`: its tree listing was complete, which stamps its time (tree-refresh.ts). */
function finishSource(state: State, listed: boolean): PageResult<State> {
  const source = walkedSources(state)[state.index];
  const listedAt = listed && source ? { ...state.listedAt, [source.partition]: state.startedAt } : state.listedAt;
  const index = nextListed(state, state.index + 1);
  const next: State = { ...state, index, walk: null, listedAt, sourcesOk: state.sourcesOk + 1, lastUnavailable: false };
  return { rows: {}, state: next, done: index >= walkedSources(state).length };
}

/**
 * One page of the check pass over the sources whose tree this run does not list. A source where
 * the check found a document gone or unreadable, or a renamed page with children, joins the
 * listed ones: its complete listing and read-back judge the deletion (the certain-deletion rule),
 * and rebuild the paths.
 */
async function checkPage(ctx: Ctx, state: State, partitions: string[]): Promise<PageResult<State>> {
  const page = await checkKnown(ctx, partitions, state.checkAfter);
  const added = [...page.relist].filter((p) => !state.structure.includes(p));
  if (added.length > 0) {
    ctx.log.info({ runId: ctx.runId, sources: added }, 'docs check pass: a known document is gone, unreadable or a renamed parent: its source is listed this run');
  }
  const structure = [...state.structure, ...added];
  let next: State = { ...state, structure, checkAfter: page.after, checked: page.after === null };
  if (next.checked) {
    const checkedOk = partitions.filter((p) => !structure.includes(p)).length;
    next = { ...next, sourcesOk: next.sourcesOk + checkedOk, index: nextListed(next, 0) };
    ctx.log.info(
      { runId: ctx.runId, checked: checkedOk, listed: structure.length },
      'docs check pass over: known documents checked through metas; new, moved or deleted pages of the checked sources are found by their next tree listing (treeRefreshMinutes)',
    );
  }
  return { rows: { docs_nodes: page.rows }, state: next, done: next.checked && listedDocs(next).length === 0 && next.index >= walkedSources(next).length };
}

/** Single-document sources, up to 200 a call: one metas call is both their change check and their listing. */
async function docsPage(ctx: Ctx, state: State, filter: DocsFilter): Promise<PageResult<State>> {
  const docs = listedDocs(state);
  const batch = docs.slice(state.docIndex, state.docIndex + METAS_BATCH);
  const answer = await batchQueryMetas(ctx, batch.map((s) => ({ doc_token: s.token, doc_type: s.docType })), { withUrl: true });
  const rows: StreamRow[] = [];
  const itemErrors: ItemError[] = [];
  // A one-document source's stored row goes when Lark says the document is gone or no longer
  // readable (970005 / 970003), or when it is now out of scope: its "listing" is that one answer.
  const gone: ChildScope[] = [];
  let ok = 0;
  let failed = 0;
  for (const s of batch) {
    const meta = (answer.metas ?? []).find((m) => m.doc_token === s.token);
    if (meta) {
      ok += 1;
      const row = metaRow(meta, s.docType, s.partition);
      if (row && inScope(filter, s.docType, String(row.columns.path))) rows.push(row);
      else gone.push({ stream: 'docs_nodes', column: 'source', value: s.partition, keys: [] });
      continue;
    }
    failed += 1;
    const f = (answer.failed_list ?? []).find((x) => x.token === s.token);
    if (f?.code === META_GONE || f?.code === META_FORBIDDEN) gone.push({ stream: 'docs_nodes', column: 'source', value: s.partition, keys: [] });
    if (state.itemErrors + itemErrors.length < MAX_ITEM_ERRORS) {
      const forbidden = f?.code === META_FORBIDDEN;
      itemErrors.push({
        item: 'docs_source',
        id: s.partition,
        errorClass: forbidden ? 'permission_denied' : 'not_found',
        message: forbidden
          ? `${describeSource(s)}: the reader may not open it (metas code ${f?.code}); ${accessHint('doc', ctx.config)}`
          : `${describeSource(s)}: Lark has no such ${s.docType} (metas code ${f?.code ?? 'none'}): it was deleted or the URL is wrong; fix or remove this source`,
      });
    }
  }
  const docIndex = state.docIndex + batch.length;
  const listedAt = { ...state.listedAt };
  for (const s of batch) if ((answer.metas ?? []).some((m) => m.doc_token === s.token)) listedAt[s.partition] = state.startedAt;
  const next: State = { ...state, docIndex, listedAt, sourcesOk: state.sourcesOk + ok, sourcesFailed: state.sourcesFailed + failed, itemErrors: state.itemErrors + itemErrors.length };
  const done = docIndex >= docs.length && state.index >= walkedSources(state).length;
  if (done && next.sourcesOk === 0 && itemErrors[0]) throw new SyncError(itemErrors[0].errorClass as 'permission_denied' | 'not_found', itemErrors[0].message);
  return { rows: { docs_nodes: rows }, state: next, done, replaceChildren: gone.length > 0 ? gone : undefined, itemErrors };
}

/**
 * A source that failed (no access, gone, a listing Lark keeps failing) is recorded on the run and
 * the others go on; the run ends `partial`. When no source could be read at all, the run fails
 * with this source's error, which names it and says what to do.
 */
function skipSource(ctx: Ctx, state: State, source: DocsSource, err: SyncError): PageResult<State> {
  const index = nextListed(state, state.index + 1);
  const done = index >= walkedSources(state).length;
  const failed = state.sourcesFailed + 1;
  if (done && state.sourcesOk === 0) throw err;
  ctx.log.warn({ runId: ctx.runId, source: source.partition, errorClass: err.errorClass }, 'docs source failed: recorded on the run, the other sources go on');
  const itemErrors: ItemError[] =
    state.itemErrors < MAX_ITEM_ERRORS ? [{ item: 'docs_source', id: source.partition, errorClass: err.errorClass, message: err.message }] : [];
  return {
    rows: {},
    state: { ...state, index, walk: null, sourcesFailed: failed, itemErrors: state.itemErrors + itemErrors.length, lastUnavailable: err.errorClass === 'upstream_unavailable' },
    done,
    itemErrors,
  };
}

/**
 * Lists every configured source into docs_nodes: single documents through metas, wiki spaces and
 * pages and Drive folders by walking their trees (50 nodes / 200 files a call), each node with its
 * path and edit time, which are the content phase's change check. A source whose listing completed
 * has its missing nodes judged (see confirmPage).
 */
export const listingPhase = definePhase<State, DocsConfigType, DocsReads>({
  name: 'docs_listing',
  stateSchema: Type.Object({
    v: Type.Literal(2),
    sources: Type.Array(Type.Object({}, { additionalProperties: true })),
    docIndex: Type.Integer({ minimum: 0 }),
    checked: Type.Boolean(),
    checkAfter: Type.Union([Type.String(), Type.Null()]),
    structure: Type.Array(Type.String()),
    listedAt: Type.Record(Type.String(), Type.Number()),
    scopeKey: Type.String(),
    startedAt: Type.Number(),
    prefetch: Type.Array(Type.String(), { maxItems: PREFETCH_QUEUE }),
    index: Type.Integer({ minimum: 0 }),
    walk: Type.Union([
      Type.Object({
        step: Type.Union([Type.Literal('open'), Type.Literal('list'), Type.Literal('confirm')]),
        spaceId: Type.Union([Type.String(), Type.Null()]),
        frames: Type.Array(Type.Object({ parent: Type.String(), path: Type.String(), pageToken: Type.Union([Type.String(), Type.Null()]) })),
        complete: Type.Boolean(),
        confirmAfter: Type.Union([Type.String(), Type.Null()]),
      }),
      Type.Null(),
    ]),
    spaceNames: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]),
    sourcesOk: Type.Integer({ minimum: 0 }),
    sourcesFailed: Type.Integer({ minimum: 0 }),
    itemErrors: Type.Integer({ minimum: 0 }),
    lastUnavailable: Type.Boolean(),
  }),
  tracksDeletions: ['docs_nodes'],
  init: (ctx, previous) => {
    const sources = sourcesOf(ctx.config);
    const scopeKey = scopeKeyOf(ctx.config);
    const startedAt = Date.now();
    // Only sources still configured keep their stamp; a source added since is listed.
    const listedAt = Object.fromEntries(Object.entries(previous?.listedAt ?? {}).filter(([p]) => sources.some((s) => s.partition === p)));
    const structure = structureDue({
      sources,
      mode: ctx.mode,
      refreshMinutes: ctx.config.treeRefreshMinutes ?? DEFAULT_TREE_REFRESH_MINUTES,
      scopeChanged: previous !== undefined && previous.scopeKey !== scopeKey,
      listedAt,
      now: startedAt,
    });
    const state: State = {
      v: 2,
      sources,
      docIndex: 0,
      checked: false,
      checkAfter: null,
      structure,
      listedAt,
      scopeKey,
      startedAt,
      prefetch: [],
      index: 0,
      walk: null,
      spaceNames: null,
      sourcesOk: 0,
      sourcesFailed: 0,
      itemErrors: 0,
      lastUnavailable: false,
    };
    return { ...state, index: nextListed(state, 0) };
  },
  async readPage(ctx, initial) {
    let state = initial;
    const filter = filterOf(ctx.config);
    // First the check pass over every source not listed this run (one metas call per 200 known
    // documents, whichever sources they are in), then single documents, then the trees.
    if (!state.checked) {
      const checking = state.sources.map((s) => s.partition).filter((p) => !state.structure.includes(p));
      if (checking.length > 0) return checkPage(ctx, state, checking);
      state = { ...state, checked: true };
    }
    if (state.docIndex < listedDocs(state).length) return docsPage(ctx, state, filter);
    const sources = walkedSources(state);
    const source = sources[state.index];
    if (!source) return { rows: {}, state, done: true };
    let walk = state.walk;
    try {
      if (!walk || walk.step === 'open') {
        const opened = await openWalk(ctx, state, source, filter);
        walk = opened.walk;
        if (walk.frames.length === 0) walk = { ...walk, step: 'confirm' };
        return {
          rows: { docs_nodes: opened.rows },
          state: { ...state, walk },
          done: false,
          sweep: walk.step === 'confirm' ? [{ stream: 'docs_nodes', partition: source.partition, confirmBy: 'relist' }] : undefined,
        };
      }
      if (walk.step === 'list') {
        const listing = listPage(ctx, state, source, walk, filter);
        // Documents earlier pages listed are read while this listing call waits on its 100/min.
        const read = await readWhileListing(ctx, state.sources.map((s) => s.partition), state.prefetch, filter, listing);
        const page = await listing;
        const listed = page.rows.filter((r) => prefetchable(r.columns.obj_type) && typeof r.columns.obj_token === 'string').map((r) => String(r.columns.obj_token));
        const prefetch = [...new Set([...state.prefetch.slice(read.taken), ...listed])].slice(0, PREFETCH_QUEUE);
        const rows = { docs_nodes: page.rows, docs_content: read.rows };
        state = { ...state, prefetch };
        const ended = page.walk.frames.length === 0;
        if (!ended) return { rows, state: { ...state, walk: page.walk }, done: false };
        if (!page.walk.complete) {
          ctx.log.warn({ runId: ctx.runId, source: source.partition }, 'docs listing ended early (has_more without a page token): no deletions judged');
          return { ...finishSource(state, false), rows };
        }
        // The listing is complete: nodes it did not show are candidates, read back next page.
        return {
          rows,
          state: { ...state, walk: { ...page.walk, step: 'confirm', confirmAfter: null } },
          done: false,
          sweep: [{ stream: 'docs_nodes', partition: source.partition, confirmBy: 'relist' }],
        };
      }
      return await confirmPage(ctx, state, source, walk, filter);
    } catch (err) {
      const named = err instanceof SyncError && err.message.startsWith(describeSource(source));
      const explained = named ? err : explain(err, describeSource(source), source.kind === 'space' ? 'space' : source.kind === 'node' ? 'node' : 'folder', ctx.config);
      // A listing Lark keeps failing is the source's; a second source in a row failing that way
      // is an outage, which stops the run rather than trying every source.
      if (!isItemFailure(explained, { unavailable: !state.lastUnavailable })) throw explained;
      return skipSource(ctx, state, source, explained);
    }
  },
});
