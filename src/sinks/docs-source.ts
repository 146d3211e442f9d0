import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

/**
 * What the sinks read of the docs module's `docs_content` stream (one row per Lark document;
 * record_key = obj_token): its feed, in the records feed's order and below the same snapshot
 * horizon (README "records feed"), and each document's current state.
 */

export interface FeedPosition {
  /** change_xid as text (xid8) */
  xid: string;
  /** change_seq as text (bigint) */
  seq: string;
}

export interface FeedEntry extends FeedPosition {
  key: string;
}

/** Changes after `after`, oldest first; only those of finished transactions, so none can appear behind a cursor. */
export async function readFeed(db: Kysely<Database>, tenantKey: string, after: FeedPosition, limit: number): Promise<FeedEntry[]> {
  const res = await sql<{ key: string; xid: string; seq: string }>`
    select record_key as key, change_xid::text as xid, change_seq::text as seq
      from docs_content
     where tenant_key = ${tenantKey}
       and (change_xid, change_seq) > (${after.xid}::xid8, ${after.seq}::bigint)
       and change_xid < (select feed_horizon())
     order by change_xid, change_seq
     limit ${limit}`.execute(db);
  return res.rows;
}

/**
 * Whether committed changes lie after `after` that readFeed does not serve yet: their transaction
 * is not below the snapshot horizon (another transaction, anywhere on the server, is still open).
 */
export async function feedAhead(db: Kysely<Database>, tenantKey: string, after: FeedPosition): Promise<boolean> {
  const res = await sql<{ ok: boolean }>`
    select true as ok from docs_content
     where tenant_key = ${tenantKey} and (change_xid, change_seq) > (${after.xid}::xid8, ${after.seq}::bigint)
     limit 1`.execute(db);
  return res.rows.length > 0;
}

export interface LarkFile {
  name: string | null;
  mime: string | null;
  size: number | null;
  token: string;
}

/** A Lark document as docs_content has it now (without its Markdown, read when needed). */
export interface DocState {
  token: string;
  deleted: boolean;
  format: 'markdown' | 'file';
  objType: string | null;
  title: string | null;
  path: string | null;
  url: string | null;
  file: LarkFile | null;
  /** sha256 of the Markdown, or a file's version fingerprint (content_hash when the module gave none) */
  bodyHash: string;
  /** Lark's edit time of the version stored (whole seconds; null when the listing gave none) */
  editedTime: Date | null;
}

interface Row {
  record_key: string;
  deleted_at: Date | null;
  format: string | null;
  obj_type: string | null;
  title: string | null;
  path: string | null;
  url: string | null;
  file: unknown;
  body_hash: string | null;
  content_hash: string;
  edited_time: Date | null;
}

function fileOf(v: unknown): LarkFile | null {
  if (!v || typeof v !== 'object') return null;
  const f = v as Record<string, unknown>;
  if (typeof f.token !== 'string' || f.token === '') return null;
  return {
    token: f.token,
    name: typeof f.name === 'string' ? f.name : null,
    mime: typeof f.mime === 'string' ? f.mime : null,
    size: typeof f.size === 'number' ? f.size : null,
  };
}

export async function readDocs(db: Kysely<Database>, tenantKey: string, tokens: string[]): Promise<Map<string, DocState>> {
  const out = new Map<string, DocState>();
  if (tokens.length === 0) return out;
  const res = await sql<Row>`
    select record_key, deleted_at, format, obj_type, title, path, url, file, body_hash, content_hash, edited_time
      from docs_content
     where tenant_key = ${tenantKey} and record_key = any(${tokens}::text[])`.execute(db);
  for (const r of res.rows) {
    const file = fileOf(r.file);
    out.set(r.record_key, {
      token: r.record_key,
      // A file row without a file token cannot be delivered: it counts as absent.
      deleted: r.deleted_at !== null || (r.format === 'file' && !file),
      format: r.format === 'file' ? 'file' : 'markdown',
      objType: r.obj_type,
      title: r.title,
      path: r.path,
      url: r.url,
      file,
      bodyHash: r.body_hash ?? r.content_hash,
      editedTime: r.edited_time,
    });
  }
  return out;
}

/** Bytes of a document's Markdown (a file's size is in its description). */
export async function markdownBytes(db: Kysely<Database>, tenantKey: string, token: string): Promise<number> {
  const res = await sql<{ n: number | null }>`
    select octet_length(markdown) as n from docs_content where tenant_key = ${tenantKey} and record_key = ${token}`.execute(db);
  return res.rows[0]?.n ?? 0;
}

/**
 * Characters per part of a Markdown body read back (at most 768 KB of UTF-8). The Postgres client
 * gathers each message in a buffer it doubles chunk by chunk, afresh for every message: with parts
 * of a million characters a 10 MB page left 30-40 MB of such buffers for the collector at once.
 */
export const MARKDOWN_PART_CHARS = 256 * 1024;

/**
 * A document's Markdown as a Blob of its UTF-8, read in parts of MARKDOWN_PART_CHARS characters,
 * one statement each, in one repeatable-read transaction (one snapshot: the parts are of one
 * version). Read whole, a 10 MB page arrives as one message that the Postgres client gathers in a
 * buffer doubled chunk by chunk to 16 MB (about 30 MB of Buffers and 25-40 MB of resident memory
 * per read, measured); read in one statement, all parts arrive at once. Here no message passes
 * 768 KB, and each part's string is garbage once the Blob holds its bytes (a Blob made of a Blob
 * and a part does not copy the first). Empty when the row holds no Markdown.
 */
export async function readMarkdownBlob(db: Kysely<Database>, tenantKey: string, token: string, type: string): Promise<Blob> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const head = await sql<{ n: number }>`
        select char_length(markdown) as n from docs_content where tenant_key = ${tenantKey} and record_key = ${token} and markdown is not null`.execute(trx);
      const chars = head.rows[0]?.n;
      let blob = new Blob([], { type });
      if (chars === undefined) return blob;
      for (let from = 1; from <= chars; from += MARKDOWN_PART_CHARS) {
        const part = await sql<{ part: string }>`
          select substr(markdown, ${from}::int, ${MARKDOWN_PART_CHARS}::int) as part
            from docs_content where tenant_key = ${tenantKey} and record_key = ${token}`.execute(trx);
        blob = new Blob([blob, part.rows[0]?.part ?? ''], { type });
      }
      return blob;
    });
}

/** Tokens of the tenant's documents ending in one of these short tokens (a name-only rebuild). */
export async function tokensByShort(db: Kysely<Database>, tenantKey: string, shorts: string[], length: number): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (shorts.length === 0) return out;
  const res = await sql<{ record_key: string }>`
    select record_key from docs_content
     where tenant_key = ${tenantKey} and right(record_key, ${length}) = any(${shorts}::text[])`.execute(db);
  for (const r of res.rows) {
    const s = r.record_key.slice(-length);
    out.set(s, [...(out.get(s) ?? []), r.record_key]);
  }
  return out;
}
