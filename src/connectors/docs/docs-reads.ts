import { sql, type Kysely } from 'kysely';
import type { Database } from '../../db/database.js';

/**
 * The docs phases' reads of what earlier runs (and earlier pages of this run) stored, bound to one
 * tenant (exposed to phases as `ctx.read.docs`). Phases never write: the engine commits their pages.
 */
export interface DocsReads {
  /** Stored nodes by key: their kind, path and source partition (for deletion candidates). */
  nodes(keys: string[]): Promise<Map<string, { objType: string | null; path: string | null; partition: string }>>;
  /**
   * Live nodes of these partitions for the next `limit` documents (obj_token) after `afterObj`, in
   * (obj_token, path, token) order, each with what docs_content holds for that document.
   */
  documents(partitions: string[], afterObj: string | null, limit: number): Promise<StoredDocument[]>;
  /** The stored docs_content rows of these documents, with their Markdown unless `body` is false (a 10 MB page read back costs tens of MB). */
  contents(objTokens: string[], opts?: { body?: boolean }): Promise<Map<string, StoredContent>>;
  /** Partitions that still have live nodes. */
  nodePartitions(): Promise<string[]>;
  /** Live nodes of these partitions after `afterKey` (by record_key), `limit` of them, as stored: the check pass's input. */
  liveNodes(partitions: string[], afterKey: string | null, limit: number): Promise<KnownNode[]>;
  /** `documents` for these documents only (the listing's read of what it just listed). */
  documentsByToken(partitions: string[], objTokens: string[]): Promise<StoredDocument[]>;
}

/** A stored docs_nodes row: its key, columns (as the stream has them) and Lark's raw listing. */
export interface KnownNode {
  key: string;
  partition: string;
  columns: Record<string, unknown> & { obj_token: string | null; obj_type: string | null; title: string | null; path: string | null; edited_time: string | null };
  raw: Record<string, unknown>;
}

export interface StoredNode {
  token: string;
  objType: string | null;
  title: string | null;
  path: string | null;
  url: string | null;
  /** ISO time */
  editedTime: string | null;
  partition: string;
  raw: Record<string, unknown>;
}

export interface StoredContentHead {
  objType: string | null;
  title: string | null;
  path: string | null;
  url: string | null;
  editedTime: string | null;
  deleted: boolean;
  /** read in its edit time's second: equal edit times do not prove it current (content.phase.ts) */
  unsettled: boolean;
  /** the docx revision the stored body is of (or later) */
  revision: number | null;
}

export interface StoredDocument {
  objToken: string;
  nodes: StoredNode[];
  content: StoredContentHead | undefined;
}

export interface StoredContent {
  columns: Record<string, unknown>;
  raw: unknown;
  deleted: boolean;
  /** as StoredContentHead's */
  unsettled: boolean;
}

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

export function docsReads(db: Kysely<Database>, tenantKey: string): DocsReads {
  async function documentsWhere(partitions: string[], afterObj: string | null, limit: number, only: string[] | null): Promise<StoredDocument[]> {
    if (partitions.length === 0) return [];
    const res = await sql<{
      obj_token: string;
      token: string;
      obj_type: string | null;
      title: string | null;
      path: string | null;
      url: string | null;
      edited_time: Date | null;
      partition: string;
      raw: Record<string, unknown>;
      c_obj_type: string | null;
      c_title: string | null;
      c_path: string | null;
      c_url: string | null;
      c_edited_time: Date | null;
      c_exists: boolean;
      c_deleted: boolean;
      c_unsettled: boolean;
      c_revision: number | null;
    }>`
      with docs as (
        select distinct obj_token from docs_nodes
         where tenant_key = ${tenantKey} and deleted_at is null and partition = any(${partitions}::text[])
           and obj_token is not null and obj_token > ${afterObj ?? ''}
           and (${only}::text[] is null or obj_token = any(${only}::text[]))
         order by obj_token limit ${limit})
      select n.obj_token, n.token, n.obj_type, n.title, n.path, n.url, n.edited_time, n.partition, n.raw,
             c.obj_type as c_obj_type, c.title as c_title, c.path as c_path, c.url as c_url, c.edited_time as c_edited_time,
             c.record_key is not null as c_exists, c.deleted_at is not null as c_deleted,
             coalesce(c.raw ? 'unsettled', false) as c_unsettled, c.revision as c_revision
        from docs d
        join docs_nodes n on n.tenant_key = ${tenantKey} and n.obj_token = d.obj_token and n.deleted_at is null
                         and n.partition = any(${partitions}::text[])
        left join docs_content c on c.tenant_key = ${tenantKey} and c.record_key = d.obj_token
       order by n.obj_token, n.path collate "C", n.token collate "C"`.execute(db);
    const out: StoredDocument[] = [];
    for (const r of res.rows) {
      let doc = out.at(-1);
      if (!doc || doc.objToken !== r.obj_token) {
        doc = {
          objToken: r.obj_token,
          nodes: [],
          content: r.c_exists
            ? { objType: r.c_obj_type, title: r.c_title, path: r.c_path, url: r.c_url, editedTime: iso(r.c_edited_time), deleted: r.c_deleted, unsettled: r.c_unsettled, revision: r.c_revision }
            : undefined,
        };
        out.push(doc);
      }
      doc.nodes.push({ token: r.token, objType: r.obj_type, title: r.title, path: r.path, url: r.url, editedTime: iso(r.edited_time), partition: r.partition, raw: r.raw });
    }
    return out;
  }

  return {
    async nodes(keys) {
      const out = new Map<string, { objType: string | null; path: string | null; partition: string }>();
      if (keys.length === 0) return out;
      const res = await sql<{ record_key: string; obj_type: string | null; path: string | null; partition: string }>`
        select record_key, obj_type, path, partition from docs_nodes
         where tenant_key = ${tenantKey} and record_key = any(${keys}::text[])`.execute(db);
      for (const r of res.rows) out.set(r.record_key, { objType: r.obj_type, path: r.path, partition: r.partition });
      return out;
    },
    documents: (partitions, afterObj, limit) => documentsWhere(partitions, afterObj, limit, null),
    documentsByToken: (partitions, objTokens) => (objTokens.length === 0 ? Promise.resolve([]) : documentsWhere(partitions, null, objTokens.length, objTokens)),
    async liveNodes(partitions, afterKey, limit) {
      if (partitions.length === 0) return [];
      const res = await sql<{ record_key: string; partition: string; raw: Record<string, unknown> } & Record<string, unknown>>`
        select record_key, partition, raw, token, obj_token, obj_type, title, path, url, parent_token, owner_id, created_time, edited_time, source
          from docs_nodes
         where tenant_key = ${tenantKey} and partition = any(${partitions}::text[]) and deleted_at is null and record_key > ${afterKey ?? ''}
         order by record_key limit ${limit}`.execute(db);
      return res.rows.map(({ record_key, partition, raw, ...columns }) => ({
        key: record_key,
        partition,
        raw,
        columns: { ...columns, created_time: iso(columns.created_time as Date | null), edited_time: iso(columns.edited_time as Date | null) } as unknown as KnownNode['columns'],
      }));
    },
    async contents(objTokens, opts = {}) {
      const out = new Map<string, StoredContent>();
      if (objTokens.length === 0) return out;
      const markdown = opts.body === false ? sql`null::text as markdown` : sql`markdown`;
      const res = await sql<Record<string, unknown> & { record_key: string; raw: unknown; deleted_at: Date | null }>`
        select record_key, raw, deleted_at, token, obj_type, format, title, path, url, ${markdown}, file, size, body_hash, edited_time, revision
          from docs_content where tenant_key = ${tenantKey} and record_key = any(${objTokens}::text[])`.execute(db);
      for (const r of res.rows) {
        const { record_key, raw, deleted_at, ...columns } = r;
        columns.edited_time = iso(columns.edited_time as Date | null);
        out.set(record_key, { columns, raw, deleted: deleted_at !== null, unsettled: typeof raw === 'object' && raw !== null && 'unsettled' in raw });
      }
      return out;
    },
    async nodePartitions() {
      const res = await sql<{ partition: string }>`
        select distinct partition from docs_nodes where tenant_key = ${tenantKey} and deleted_at is null`.execute(db);
      return res.rows.map((r) => r.partition);
    },
  };
}
