import type { LarkSimulator } from '../../simulator/lark-simulator.js';
import type { SimBlock, TextElement } from '../../simulator/data/docs/index.js';

/** Raw-HTTP helpers for the simulator's Drive, wiki and docx APIs (docs-*.test.ts). */

export interface Body<D = Record<string, unknown>> {
  code: number;
  msg?: string;
  data?: D;
}

export interface DriveFile {
  token: string;
  name: string;
  type: string;
  parent_token: string;
  url: string;
  shortcut_info?: { target_type: string; target_token: string };
  created_time: string;
  modified_time: string;
  owner_id: string;
}

export interface FilesPage {
  files: DriveFile[];
  has_more: boolean;
  next_page_token?: string;
}

export interface WikiNode {
  space_id: string;
  node_token: string;
  obj_token: string;
  obj_type: string;
  parent_node_token: string;
  node_type: 'origin' | 'shortcut';
  origin_node_token: string;
  origin_space_id: string;
  has_child: boolean;
  title: string;
  obj_create_time: string;
  obj_edit_time: string;
  node_create_time: string;
  url: string;
}

export interface NodesPage {
  items: WikiNode[];
  has_more: boolean;
  page_token?: string;
}

export interface BlocksPage {
  items: SimBlock[];
  has_more: boolean;
  page_token?: string;
}

export type Call = <D = Record<string, unknown>>(token: string, method: 'GET' | 'POST', path: string, body?: unknown) => Promise<{ status: number; headers: Headers; body: Body<D> }>;

/** JSON calls to the simulator with a tenant or user token. */
export function caller(sim: LarkSimulator): Call {
  return async <D>(token: string, method: 'GET' | 'POST', path: string, body?: unknown) => {
    const res = await fetch(sim.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Body<D> };
  };
}

/** Every file of a folder, page by page. */
export async function listFolder(call: Call, token: string, folder: string, pageSize = 50): Promise<DriveFile[]> {
  const out: DriveFile[] = [];
  let pageToken = '';
  for (let guard = 0; guard < 1000; guard += 1) {
    const res = await call<FilesPage>(token, 'GET', `/open-apis/drive/v1/files?folder_token=${folder}&page_size=${pageSize}${pageToken ? `&page_token=${pageToken}` : ''}`);
    if (res.body.code !== 0) throw new Error(`listing ${folder}: ${JSON.stringify(res.body)}`);
    out.push(...res.body.data!.files);
    if (!res.body.data!.has_more) return out;
    pageToken = res.body.data!.next_page_token!;
  }
  throw new Error('listing did not end');
}

/** The children of a wiki node (or of the space's top), page by page, empty pages included. */
export async function listNodes(call: Call, token: string, space: string, parent = '', pageSize = 50): Promise<{ nodes: WikiNode[]; pages: number }> {
  const nodes: WikiNode[] = [];
  let pageToken = '';
  for (let pages = 1; pages < 1000; pages += 1) {
    const q = new URLSearchParams({ page_size: String(pageSize), ...(parent ? { parent_node_token: parent } : {}), ...(pageToken ? { page_token: pageToken } : {}) });
    const res = await call<NodesPage>(token, 'GET', `/open-apis/wiki/v2/spaces/${space}/nodes?${q.toString()}`);
    if (res.body.code !== 0) throw new Error(`nodes of ${parent || space}: ${JSON.stringify(res.body)}`);
    nodes.push(...res.body.data!.items);
    if (!res.body.data!.has_more) return { nodes, pages };
    pageToken = res.body.data!.page_token!;
  }
  throw new Error('listing did not end');
}

/** Every node of a space, breadth first, with its depth (1 = top level). */
export async function walkSpace(call: Call, token: string, space: string, pageSize = 50): Promise<Array<WikiNode & { depth: number; listedChildren: number }>> {
  const out: Array<WikiNode & { depth: number; listedChildren: number }> = [];
  let level: Array<{ parent: string; depth: number; into?: { listedChildren: number } }> = [{ parent: '', depth: 1 }];
  while (level.length > 0) {
    const next: typeof level = [];
    for (const { parent, depth, into } of level) {
      const { nodes } = await listNodes(call, token, space, parent, pageSize);
      if (into) into.listedChildren = nodes.length;
      for (const n of nodes) {
        const entry = { ...n, depth, listedChildren: 0 };
        out.push(entry);
        if (n.has_child) next.push({ parent: n.node_token, depth: depth + 1, into: entry });
      }
    }
    level = next;
  }
  return out;
}

/** Every block of a document, page by page. */
export async function allBlocks(call: Call, token: string, documentId: string, query = ''): Promise<{ blocks: SimBlock[]; pages: number }> {
  const blocks: SimBlock[] = [];
  let pageToken = '';
  for (let pages = 1; pages < 10_000; pages += 1) {
    const res = await call<BlocksPage>(token, 'GET', `/open-apis/docx/v1/documents/${documentId}/blocks?${query}${pageToken ? `&page_token=${pageToken}` : ''}`);
    if (res.body.code !== 0) throw new Error(`blocks of ${documentId}: ${JSON.stringify(res.body)}`);
    blocks.push(...res.body.data!.items);
    if (!res.body.data!.has_more) return { blocks, pages };
    pageToken = res.body.data!.page_token!;
  }
  throw new Error('blocks did not end');
}

const TEXT_KEYS = ['page', 'text', 'heading1', 'heading2', 'heading3', 'bullet', 'ordered', 'code', 'quote', 'todo'];

/** A block's words (mentions through `nameOf`), or undefined for blocks without text. */
export function blockText(b: SimBlock, nameOf: (openId: string) => string): string | undefined {
  for (const k of TEXT_KEYS) {
    const p = b[k] as { elements?: TextElement[] } | undefined;
    if (p?.elements) return p.elements.map((e) => ('text_run' in e ? e.text_run.content : `@${nameOf(e.mention_user.user_id)}`)).join('');
  }
  return undefined;
}

/** Markdown without its inline markup: what a reader sees of the words. */
export function stripMarkdown(md: string): string {
  return md
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\*\*|~~|`/g, '')
    .replace(/(^|[^*])\*([^*]+)\*/g, '$1$2');
}

/** A GET whose answer may be bytes. */
export async function download(sim: LarkSimulator, token: string, path: string): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
  const res = await fetch(sim.url + path, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
