import { createHash } from 'node:crypto';

/**
 * What the delivery (delivery.ts) needs from a knowledge-base product. The two products differ in
 * how a new version replaces the old one:
 * - `side-by-side` (RAGFlow): no content replace exists; a new document is uploaded and parsed
 *   next to the old one, which is deleted once the new one is DONE (no retrieval gap);
 * - `in-place` (Dify): the document is updated under its id (only when `available`), or deleted
 *   and created again.
 */
export interface SinkDriver {
  readonly replace: 'side-by-side' | 'in-place';
  /** Documents whose name carries this Lark document's short token (and whose metadata, if any, names it). */
  findCandidates(token: string): Promise<RemoteDoc[]>;
  /** Every document of the dataset (a rebuild of the mapping). */
  listAll(): AsyncIterable<RemoteDoc>;
  create(name: string, content: Content): Promise<{ id: string; name: string }>;
  /** in-place only: replace the content (and name) of a document that is `available`. */
  update(id: string, name: string, content: Content): Promise<'ok' | 'not_available' | 'missing'>;
  /** Sets the metadata, and the name when given (RAGFlow: one update call; Dify: the name needs `rename`). */
  setMeta(id: string, meta: SinkMeta, name?: string): Promise<'ok' | 'missing' | 'name_taken'>;
  /** in-place only: rename a document that is `available`. */
  rename(id: string, name: string): Promise<'ok' | 'not_available' | 'missing'>;
  /** Starts parsing / indexing (RAGFlow parses on demand; Dify indexes by itself). */
  startProcessing(id: string): Promise<'ok' | 'missing'>;
  status(id: string): Promise<ProcessingStatus>;
  /** A stuck or failed run: `restarted` (stopped and parsing again), or `recreate` (delete it and create anew). */
  restart(id: string): Promise<'restarted' | 'recreate' | 'missing'>;
  /** `busy`: the sink refuses for now (Dify while indexing); `kept`: it cannot be deleted (archived). */
  remove(id: string): Promise<'deleted' | 'missing' | 'busy' | 'kept'>;
}

export interface RemoteDoc {
  id: string;
  name: string;
  /** larksync's metadata as the sink holds it (lark_token, lark_hash), when it has any. */
  meta: Record<string, string>;
  createdAt: number;
  /** Bytes stored, when the sink says (RAGFlow `size`, Dify's upload file size). */
  size?: number;
}

/**
 * A document's body: a file's bytes, or a Markdown page's UTF-8 as a Blob made part by part (as
 * read back, docs-source.ts): a 10 MB page is held neither whole as one string nor as one more
 * Buffer copy on its way out. The text routes (Dify create-by-text) read it as one string.
 */
export type Content = { bytes: Buffer; blob?: undefined; mime: string } | { blob: Blob; bytes?: undefined; mime: string };

export const uploadPart = (content: Content): Blob => content.blob ?? new Blob([content.bytes], { type: content.mime });

export type SinkMeta = Record<string, string>;

export interface ProcessingStatus {
  /** done: searchable; running: queued or processing; failed: ended in error; missing: no such document. */
  state: 'done' | 'running' | 'failed' | 'missing';
  /** The sink's own word (RAGFlow `run`, Dify `indexing_status`/`display_status`). */
  remote: string;
  /** Dify: the document can be updated (`display_status` available). */
  updatable?: boolean;
  error?: string;
}

/** Characters of the obj_token kept in a sink document's name. */
export const SHORT_TOKEN_LENGTH = 10;

export const shortToken = (token: string) => token.slice(-SHORT_TOKEN_LENGTH);

/** Longest name larksync gives: Dify keeps 200 characters, RAGFlow 255 bytes (less its "(1)" while replacing). */
const MAX_NAME_CHARS = 200;
const MAX_NAME_BYTES = 240;

/**
 * A Lark document's name in the sink: `<title> (<short token>).<ext>`, unique per Lark document,
 * so neither RAGFlow's `name(1).md` renaming nor Dify's same-name re-index can mix two pages up.
 * The title is cut (by code points, deterministically) so the whole name fits both products;
 * slashes and control characters become spaces or dashes (a name is a file name).
 */
export function sinkDocumentName(title: string | null, token: string, ext: string): string {
  const suffix = ` (${shortToken(token)}).${ext}`;
  let clean = (title ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/[/\\]/g, '-').replace(/\s+/g, ' ').trim();
  if (clean === '') clean = 'Untitled';
  const chars = [...clean];
  const room = MAX_NAME_CHARS - [...suffix].length;
  let cut = chars.slice(0, Math.max(1, room));
  while (cut.length > 1 && Buffer.byteLength(cut.join('') + suffix, 'utf8') > MAX_NAME_BYTES) cut = cut.slice(0, -1);
  return cut.join('').trimEnd() + suffix;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A sink name that carries this short token (`… (abc).md`, or RAGFlow's `… (abc)(1).md`). */
export function carriesShortToken(name: string, token: string): boolean {
  return new RegExp(`\\(${escapeRe(shortToken(token))}\\)(\\(\\d+\\))?\\.[A-Za-z0-9]+$`, 'i').test(name);
}

/** The short token a larksync name carries, if any. */
export function shortTokenOf(name: string): string | undefined {
  return new RegExp(`\\(([A-Za-z0-9_-]{${SHORT_TOKEN_LENGTH}})\\)(\\(\\d+\\))?\\.[A-Za-z0-9]+$`).exec(name)?.[1];
}

/** `name`, or RAGFlow's rename of it on a collision (`stem(1).ext`). */
export function sameUploadName(actual: string, sent: string): boolean {
  if (actual.toLowerCase() === sent.toLowerCase()) return true;
  const dot = sent.lastIndexOf('.');
  const stem = dot > 0 ? sent.slice(0, dot) : sent;
  const ext = dot > 0 ? sent.slice(dot) : '';
  return new RegExp(`^${escapeRe(stem)}\\(\\d+\\)${escapeRe(ext)}$`, 'i').test(actual);
}

/** A short fingerprint of the metadata, stored to tell whether the sink's copy is current. */
export function metaKey(meta: SinkMeta): string {
  const keys = Object.keys(meta).sort();
  return createHash('sha256')
    .update(JSON.stringify(keys.map((k) => [k, meta[k]])))
    .digest('base64url')
    .slice(0, 22);
}
