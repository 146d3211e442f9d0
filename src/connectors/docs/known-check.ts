import type { SyncContext } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import type { DocsConfigType } from './config.js';
import type { DocsReads, KnownNode } from './docs-reads.js';
import { META_FORBIDDEN, META_GONE, type LarkMeta } from './lark-types.js';
import { METAS_BATCH, batchQueryMetas } from './metas.js';
import { isoFromSeconds } from './rows.js';

type Ctx = SyncContext<DocsConfigType, DocsReads>;


/** What one page of the check pass found. */
export interface CheckPage {
  /** stored nodes rewritten with Lark's newer edit time or title */
  rows: StreamRow[];
  /**
   * Partitions whose tree must be listed this run: a known document Lark names gone or unreadable
   * (970005 / 970003: a deletion candidate, which only a complete listing and its read-back may
   * confirm), or a renamed page with children (the paths below it changed).
   */
  relist: Set<string>;
  /** the last node key read, or null when the pass is over */
  after: string | null;
}

/**
 * One page of the check pass that runs between structure passes: up to 200 nodes larksync already
 * knows (of the partitions given, in key order), their documents asked of `metas/batch_query` in
 * one call, by the document's own token and type (whose `latest_modify_time` semantics are
 * documented; asking with a wiki node token and `doc_type: wiki` is accepted but its fields are
 * unconfirmed). A node whose document was edited or renamed since stored is written again with the
 * new edit time and title; the content phase then fetches or rewrites its document as after a
 * listing. Nothing here can see a page added, moved or deleted under a parent: that waits for the
 * next structure pass (see `relist` for what brings it forward).
 */
export async function checkKnown(ctx: Ctx, partitions: string[], after: string | null): Promise<CheckPage> {
  const nodes = await ctx.moduleReads.liveNodes(partitions, after, METAS_BATCH);
  const relist = new Set<string>();
  if (nodes.length === 0) return { rows: [], relist, after: null };
  const ask = new Map<string, string>();
  for (const n of nodes) if (n.columns.obj_token && n.columns.obj_type) ask.set(n.columns.obj_token, n.columns.obj_type);
  const metas = new Map<string, LarkMeta>();
  const failed = new Map<string, number>();
  if (ask.size > 0) {
    const answer = await batchQueryMetas(ctx, [...ask].map(([doc_token, doc_type]) => ({ doc_token, doc_type })));
    for (const m of answer.metas ?? []) if (m.doc_token) metas.set(m.doc_token, m);
    for (const f of answer.failed_list ?? []) if (f.token && typeof f.code === 'number') failed.set(f.token, f.code);
  }
  const rows: StreamRow[] = [];
  for (const n of nodes) {
    const obj = n.columns.obj_token;
    if (!obj) continue;
    const code = failed.get(obj);
    if (code === META_GONE || code === META_FORBIDDEN) {
      relist.add(n.partition);
      continue;
    }
    // Another failure (970002 type unsupported) or no answer at all says nothing about a change.
    const meta = metas.get(obj);
    if (!meta) continue;
    const row = refreshed(n, meta);
    if (!row) continue;
    rows.push(row);
    // The paths below a renamed page end in its old title: a listing rebuilds them.
    if (row.columns.title !== n.columns.title && n.raw.has_child === true) relist.add(n.partition);
  }
  return { rows, relist, after: nodes.length < METAS_BATCH ? null : nodes.at(-1)!.key };
}

/** The stored node with the edit time and title metas gives, or undefined when neither changed. */
export function refreshed(n: KnownNode, meta: LarkMeta): StreamRow | undefined {
  const edited = isoFromSeconds(meta.latest_modify_time);
  const newer = edited !== null && (n.columns.edited_time === null || edited > n.columns.edited_time);
  // A wiki shortcut has a title of its own (docs-wiki.md §2.2: node_type shortcut); metas gives its target's.
  const own = n.raw.node_type === 'shortcut';
  const title = !own && typeof meta.title === 'string' && meta.title.trim() !== '' ? meta.title : null;
  const renamed = title !== null && title !== n.columns.title;
  if (!newer && !renamed) return undefined;
  const oldTitle = n.columns.title?.trim() ?? '';
  const path = n.columns.path ?? '';
  // The path ends with the title (rows.ts joinPath): a rename changes that last segment only.
  const newPath = renamed && oldTitle !== '' && path.endsWith(oldTitle) ? path.slice(0, path.length - oldTitle.length) + title.trim() : path;
  const raw: Record<string, unknown> = { ...n.raw };
  if (renamed) raw[typeof n.raw.name === 'string' ? 'name' : 'title'] = title;
  if (newer) raw[typeof n.raw.modified_time === 'string' ? 'modified_time' : 'obj_edit_time'] = meta.latest_modify_time;
  return {
    recordKey: n.key,
    partition: n.partition,
    raw,
    columns: { ...n.columns, title: renamed ? title : n.columns.title, path: newPath, edited_time: newer ? edited : n.columns.edited_time },
  };
}
