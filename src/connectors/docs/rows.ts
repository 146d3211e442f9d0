import type { StreamRow } from '../../sync/streams.js';
import type { LarkDriveFile, LarkMeta, LarkWikiNode } from './lark-types.js';

/** Lark's second timestamps (strings) as ISO strings; ISO rather than Date, which the content hash would serialise as `{}`. */
export function isoFromSeconds(v: unknown): string | null {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? new Date(n * 1000).toISOString() : null;
}

/** Path segments are joined with " / "; a title's own surrounding spaces are dropped. */
export const joinPath = (prefix: string, title: string): string => (prefix ? `${prefix} / ${title.trim()}` : title.trim());

export function wikiNodeRow(node: LarkWikiNode, path: string, partition: string): StreamRow | undefined {
  if (!node.node_token) return undefined;
  return {
    recordKey: node.node_token,
    partition,
    raw: node,
    columns: {
      token: node.node_token,
      obj_token: node.obj_token ?? null,
      obj_type: node.obj_type ?? null,
      title: node.title ?? null,
      path,
      url: node.url ?? null,
      parent_token: node.parent_node_token || null,
      owner_id: node.owner ?? node.creator ?? null,
      created_time: isoFromSeconds(node.obj_create_time ?? node.node_create_time),
      edited_time: isoFromSeconds(node.obj_edit_time),
      source: partition,
    },
  };
}

export function driveFileRow(file: LarkDriveFile, path: string, partition: string): StreamRow | undefined {
  if (!file.token) return undefined;
  return {
    recordKey: file.token,
    partition,
    raw: file,
    columns: {
      token: file.token,
      obj_token: file.token,
      obj_type: file.type ?? null,
      title: file.name ?? null,
      path,
      url: file.url ?? null,
      parent_token: file.parent_token || null,
      owner_id: file.owner_id ?? null,
      created_time: isoFromSeconds(file.created_time),
      edited_time: isoFromSeconds(file.modified_time),
      source: partition,
    },
  };
}

/** A single-document source, known through its metas (there is no listing). */
export function metaRow(meta: LarkMeta, objType: string, partition: string): StreamRow | undefined {
  if (!meta.doc_token) return undefined;
  const title = meta.title ?? '';
  return {
    recordKey: meta.doc_token,
    partition,
    raw: meta,
    columns: {
      token: meta.doc_token,
      obj_token: meta.doc_token,
      obj_type: objType,
      title: meta.title ?? null,
      path: joinPath('', title),
      url: meta.url ?? null,
      parent_token: null,
      owner_id: meta.owner_id ?? null,
      created_time: isoFromSeconds(meta.create_time),
      edited_time: isoFromSeconds(meta.latest_modify_time),
      source: partition,
    },
  };
}
