import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { tableRef, type BaseConfigType } from '../connectors/base/config.js';
import type { ApprovalConfigType } from '../connectors/approval/config.js';

/** One thing a connector needs a subscribe call for. */
export interface Target {
  module: string;
  /** approval code or file token */
  objectToken: string;
  /** 'approval', or the Drive file_type */
  objectType: string;
  /** what in the settings named it, when not the token (a wiki URL) */
  source: string | null;
}

/** A wiki URL whose Base is not known yet; `resolve` asks Lark (wiki get_node). */
export interface WikiBase {
  module: 'base';
  nodeToken: string;
}

/** Document kinds the docs module stores that Drive's subscribe call takes as file_type (change-events.md §3). */
const DOC_FILE_TYPES = new Set(['docx', 'doc', 'sheet', 'bitable', 'file', 'slides']);

/**
 * What each enabled connector of the tenant should be subscribed to (disabled ones: nothing):
 * - approval: each configured approval code (change-events.md §2.1);
 * - base: each configured Base once (a file subscription covers all its tables, §3), wiki URLs
 *   through their resolved app_token (known from an earlier resolution, else listed in `unresolved`);
 * - docs: each document the module holds (docs_content, not deleted), as its own file type (§4).
 *   Folders could be subscribed for new files (`file.created_in_folder_v1`); the listing finds new
 *   files at the next poll, so that is left out.
 * Contact needs no call: its events follow the app's contact scope (§1).
 */
export async function desiredTargets(db: Kysely<Database>, tenantKey: string): Promise<{ targets: Target[]; unresolved: WikiBase[] }> {
  const connectors = await db.selectFrom('connectors').select(['module', 'enabled', 'config']).where('tenant_key', '=', tenantKey).execute();
  const targets: Target[] = [];
  const unresolved: WikiBase[] = [];
  for (const c of connectors) {
    if (!c.enabled) continue;
    if (c.module === 'approval') {
      const codes = (c.config as Partial<ApprovalConfigType>).approvalCodes ?? [];
      for (const code of new Set(codes)) targets.push({ module: 'approval', objectToken: code, objectType: 'approval', source: null });
    } else if (c.module === 'base') {
      const known = await wikiResolutions(db, tenantKey);
      const seen = new Set<string>();
      for (const entry of (c.config as Partial<BaseConfigType>).tables ?? []) {
        const ref = tableRef(entry);
        if (!ref) continue;
        const source = ref.kind === 'wiki' ? `wiki:${ref.nodeToken}` : null;
        const token = ref.kind === 'ids' ? ref.appToken : known.get(source!);
        if (!token) {
          if (!unresolved.some((u) => u.nodeToken === (ref as { nodeToken: string }).nodeToken)) unresolved.push({ module: 'base', nodeToken: (ref as { nodeToken: string }).nodeToken });
          continue;
        }
        if (seen.has(token)) continue;
        seen.add(token);
        targets.push({ module: 'base', objectToken: token, objectType: 'bitable', source });
      }
    } else if (c.module === 'docs') {
      const docs = await sql<{ token: string; obj_type: string | null }>`
        select record_key as token, obj_type from docs_content where tenant_key = ${tenantKey} and deleted_at is null`.execute(db);
      for (const d of docs.rows) {
        if (d.obj_type && DOC_FILE_TYPES.has(d.obj_type)) targets.push({ module: 'docs', objectToken: d.token, objectType: d.obj_type, source: null });
      }
    }
  }
  return { targets, unresolved };
}

/** Wiki nodes already resolved to a Base (the rows made for them remember their source). */
async function wikiResolutions(db: Kysely<Database>, tenantKey: string): Promise<Map<string, string>> {
  const rows = await db
    .selectFrom('lark_subscriptions')
    .select(['source', 'object_token'])
    .where('tenant_key', '=', tenantKey)
    .where('module', '=', 'base')
    .where('source', 'is not', null)
    .where('object_token', 'not like', 'wiki:%')
    .execute();
  return new Map(rows.map((r) => [r.source!, r.object_token]));
}
