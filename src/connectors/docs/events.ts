import { sql } from 'kysely';
import { SyncError } from '../../sync/sync-errors.js';
import type { ModuleEventContext, ModuleEventHandler } from '../../sync/sync-module.js';
import { filterOf, sourcesOf, type DocsConfigType } from './config.js';
import { chosenNode, fetchBody, fileRow, markdownRow, sameRevision } from './content.phase.js';
import type { DocsReads, StoredNode } from './docs-reads.js';
import { GONE_CODES } from './errors.js';
import { META_FORBIDDEN, META_GONE, type LarkMetasAnswer } from './lark-types.js';
import { isoFromSeconds } from './rows.js';

type Ctx = ModuleEventContext<DocsConfigType, DocsReads>;

/**
 * How long after an edit event the document is read. Editing fires often (Lark's aggregation of
 * `drive.file.edit_v1` during continuous typing is not documented: unconfirmed), so events of one
 * document within this window collapse into one re-read, counted from the first of them.
 */
export const DOCS_EDIT_DEBOUNCE_MS = 2_000;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The live nodes of a document in the configured sources, in the content phase's order. */
async function nodesOf(ctx: Ctx, objToken: string): Promise<StoredNode[]> {
  const partitions = sourcesOf(ctx.config).map((s) => s.partition);
  if (partitions.length === 0) return [];
  const res = await sql<{ token: string; obj_type: string | null; title: string | null; path: string | null; url: string | null; edited_time: Date | null; partition: string; raw: Record<string, unknown> }>`
    select token, obj_type, title, path, url, edited_time, partition, raw from docs_nodes
     where tenant_key = ${ctx.tenantKey} and deleted_at is null and obj_token = ${objToken} and partition = any(${partitions}::text[])
     order by path collate "C", token collate "C"`.execute(ctx.db);
  return res.rows.map((r) => ({
    token: r.token,
    objType: r.obj_type,
    title: r.title,
    path: r.path,
    url: r.url,
    editedTime: r.edited_time ? new Date(r.edited_time).toISOString() : null,
    partition: r.partition,
    raw: r.raw,
  }));
}

/**
 * `drive.file.edit_v1`, `title_updated_v1`, `trashed_v1`, `deleted_v1` on a document the docs
 * connector holds (a node of a configured source, in scope): its re-read is scheduled, debounced
 * per document. Documents not yet listed (new in a folder) come with the next run.
 */
export const onFileEvent: ModuleEventHandler<DocsConfigType, DocsReads> = async (event, ctx) => {
  const token = str(event.file_token);
  if (!token) return 'ignored';
  const node = chosenNode({ objToken: token, nodes: await nodesOf(ctx, token), content: undefined }, filterOf(ctx.config));
  if (!node) return 'ignored';
  await ctx.defer('refresh', { token }, { key: token, delayMs: DOCS_EDIT_DEBOUNCE_MS });
  return 'processed';
};

/**
 * The debounced re-read of one document: its metas (edit time, title; one call) and, when it
 * changed since stored, its body (as the content phase fetches it), written to docs_content like a
 * run's page; then the knowledge-base sinks are told, as after a docs run. A document Lark names
 * deleted or unreadable (metas 970005 / 970003) is marked deleted with its nodes.
 */
export const refreshDocument: ModuleEventHandler<DocsConfigType, DocsReads> = async (payload, ctx) => {
  const token = str(payload.token);
  if (!token) return 'ignored';
  const nodes = await nodesOf(ctx, token);
  const node = chosenNode({ objToken: token, nodes, content: undefined }, filterOf(ctx.config));
  if (!node) return 'ignored';
  const readSeq = await ctx.startRead();
  const answer = await ctx.lark.call<LarkMetasAnswer>('drive.metas.batch_query', {
    method: 'POST',
    path: '/open-apis/drive/v1/metas/batch_query',
    body: { request_docs: [{ doc_token: token, doc_type: node.objType ?? 'docx' }], with_url: true },
  });
  const meta = (answer.metas ?? []).find((m) => m.doc_token === token);
  if (!meta) {
    const failed = (answer.failed_list ?? []).find((f) => f.token === token);
    if (failed?.code !== META_GONE && failed?.code !== META_FORBIDDEN) return 'ignored';
    await ctx.apply({ readSeq, deleted: [{ stream: 'docs_content', keys: [token] }, { stream: 'docs_nodes', keys: nodes.map((n) => n.token) }] });
    await ctx.changed();
    return 'processed';
  }
  const title = meta.title ?? node.title;
  const oldTitle = node.title?.trim() ?? '';
  // The path ends with the title; a rename changes that last segment only.
  const path = title && node.path && oldTitle && node.path.endsWith(oldTitle) ? node.path.slice(0, node.path.length - oldTitle.length) + title.trim() : node.path;
  const editedTime = isoFromSeconds(meta.latest_modify_time) ?? node.editedTime;
  const fresh: StoredNode = { ...node, title, path, editedTime };
  // Its columns only: the body is never needed to decide, and a big one is costly to read.
  const stored = await ctx.moduleReads.contents([token], { body: false });
  const s = stored.get(token);
  const storedEdit = typeof s?.columns.edited_time === 'string' ? s.columns.edited_time : null;
  let unchanged = s && !s.deleted && storedEdit !== null && editedTime !== null && storedEdit >= editedTime && s.columns.title === title && s.columns.path === path;
  // Stored from a read in its edit's second (edit-second.ts): an equal edit time
  // proves nothing, the revision does (the next run settles the row).
  if (unchanged && s?.unsettled && storedEdit === editedTime) {
    unchanged = await sameRevision(ctx, fresh.objType, token, typeof s.columns.revision === 'number' ? s.columns.revision : null);
  }
  if (unchanged) return 'ignored';
  let row;
  if (fresh.objType === 'file') row = fileRow(token, fresh);
  else {
    try {
      row = markdownRow(token, fresh, await fetchBody(ctx, token, fresh.objType ?? 'docx'));
    } catch (err) {
      // Deleted between the metas call and this one: its trash or delete event follows.
      if (err instanceof SyncError && err.larkCode !== undefined && GONE_CODES.has(err.larkCode)) return 'ignored';
      throw err;
    }
  }
  await ctx.apply({ readSeq, rows: { docs_content: [row] } });
  await ctx.changed();
  return 'processed';
};

export const DOCS_EVENTS = {
  'drive.file.edit_v1': onFileEvent,
  'drive.file.title_updated_v1': onFileEvent,
  'drive.file.trashed_v1': onFileEvent,
  'drive.file.deleted_v1': onFileEvent,
};
