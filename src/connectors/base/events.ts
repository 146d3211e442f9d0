import { sql } from 'kysely';
import type { ModuleEventContext, ModuleEventHandler } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import { tableRef, type BaseConfigType } from './config.js';
import type { LarkBaseField, LarkBasePage, LarkBatchGet } from './lark-types.js';
import { fieldRow, recordRow } from './tables.phase.js';

type Ctx = ModuleEventContext<BaseConfigType>;

/** records/batch_get's maximum (bitable.md §2.6): one call per 100 changed records. */
const BATCH_GET_SIZE = 100;
const FIELDS_PAGE_SIZE = 100;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const tablePath = (appToken: string, tableId: string) =>
  `/open-apis/bitable/v1/apps/${encodeURIComponent(appToken)}/tables/${encodeURIComponent(tableId)}`;

/**
 * The configured entry of a table, if any: by ids, or a wiki URL naming the table whose Base the
 * sync resolved (its rows are stored under the Base's app_token). Undefined: not configured.
 */
async function configuredTable(ctx: Ctx, appToken: string, tableId: string): Promise<{ viewId: string | null } | undefined> {
  let wikiCandidate: { viewId: string | null } | undefined;
  for (const entry of ctx.config.tables) {
    const ref = tableRef(entry);
    if (ref?.kind === 'ids' && ref.appToken === appToken && ref.tableId === tableId) return { viewId: ref.viewId };
    if (ref?.kind === 'wiki' && ref.tableId === tableId) wikiCandidate = { viewId: ref.viewId };
  }
  if (!wikiCandidate) return undefined;
  const res = await sql<{ hit: boolean }>`
    select exists (select 1 from base_fields where tenant_key = ${ctx.tenantKey} and partition = ${`${appToken}:${tableId}`}) as hit`.execute(ctx.db);
  return res.rows[0]?.hit ? wikiCandidate : undefined;
}

/** Lark's order of a table's changes: its revision, else the event's update time, else the push time. */
function markOf(event: Record<string, unknown>, pushedAt: Date): number {
  if (typeof event.revision === 'number' && Number.isSafeInteger(event.revision)) return event.revision;
  if (typeof event.update_time === 'number' && Number.isFinite(event.update_time)) return Math.floor(event.update_time * 1000);
  return pushedAt.getTime();
}

/**
 * `drive.file.bitable_record_changed_v1`: the named records are read again with records/batch_get
 * (100 ids a call: one call per 100 changed records, whatever the actions say, since an edit
 * carries only the changed fields and never formula values). Records Lark names absent are marked
 * deleted; records it withholds (advanced permissions) are left as they are. A record whose applied
 * revision is newer than the event's is not read. For a table configured with a view, only records
 * already stored are refreshed: whether a new record belongs to the view is the next sync's call.
 */
export const onRecordChanged: ModuleEventHandler<BaseConfigType> = async (event, ctx) => {
  const appToken = str(event.file_token);
  const tableId = str(event.table_id);
  if (!appToken || !tableId) return 'ignored';
  const table = await configuredTable(ctx, appToken, tableId);
  if (!table) return 'ignored';
  const actions = Array.isArray(event.action_list) ? (event.action_list as Array<Record<string, unknown>>) : [];
  const ids = [...new Set(actions.map((a) => str(a?.record_id)).filter((id): id is string => id !== undefined))];
  const keyOf = (id: string) => `${appToken}:${tableId}:${id}`;
  const mark = markOf(event, ctx.pushedAt);
  const { fresh, readSeq } = await ctx.freshRead(ids.map((id) => `base_records:${keyOf(id)}`), mark);
  const freshKeys = new Set(fresh);
  let wanted = ids.filter((id) => freshKeys.has(`base_records:${keyOf(id)}`));
  if (table.viewId && wanted.length > 0) {
    const stored = await sql<{ record_key: string }>`
      select record_key from base_records where tenant_key = ${ctx.tenantKey} and record_key = any(${wanted.map(keyOf)}::text[])`.execute(ctx.db);
    const have = new Set(stored.rows.map((r) => r.record_key));
    wanted = wanted.filter((id) => have.has(keyOf(id)));
  }
  if (wanted.length === 0) return 'ignored';
  const rows: StreamRow[] = [];
  const deleted: string[] = [];
  for (let i = 0; i < wanted.length; i += BATCH_GET_SIZE) {
    const batch = wanted.slice(i, i + BATCH_GET_SIZE);
    const data = await ctx.lark.call<LarkBatchGet>('bitable.records.batch_get', {
      method: 'POST',
      path: `${tablePath(appToken, tableId)}/records/batch_get`,
      endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/batch_get',
      body: { record_ids: batch, automatic_fields: true },
    });
    const found = (data.records ?? []).filter((r) => r.record_id !== undefined);
    const foundIds = new Set(found.map((r) => r.record_id));
    for (const r of found) {
      const row = recordRow(appToken, tableId, r);
      if (row) rows.push(row);
    }
    // Gone only when Lark says so (absent_record_ids), as in the sync's confirmation.
    for (const id of data.absent_record_ids ?? []) if (!foundIds.has(id) && batch.includes(id)) deleted.push(keyOf(id));
  }
  // One transaction for every batch: the event is applied whole or not at all.
  await ctx.apply({
    readSeq,
    rows: { base_records: rows },
    deleted: [{ stream: 'base_records', keys: deleted }],
    marks: { keys: wanted.map((id) => `base_records:${keyOf(id)}`), mark },
  });
  return 'processed';
};

/**
 * `drive.file.bitable_field_changed_v1`: the table's field list is read again whole (100 a page,
 * usually one call). A field the event says was deleted and the complete listing no longer shows
 * is marked deleted.
 */
export const onFieldChanged: ModuleEventHandler<BaseConfigType> = async (event, ctx) => {
  const appToken = str(event.file_token);
  const tableId = str(event.table_id);
  if (!appToken || !tableId || !(await configuredTable(ctx, appToken, tableId))) return 'ignored';
  const mark = { keys: [`base_fields:${appToken}:${tableId}`], mark: markOf(event, ctx.pushedAt) };
  const { fresh, readSeq } = await ctx.freshRead(mark.keys, mark.mark);
  if (fresh.length === 0) return 'ignored';
  const rows: StreamRow[] = [];
  let pageToken: string | undefined;
  let complete = false;
  for (let guard = 0; guard < 10; guard += 1) {
    const data = await ctx.lark.call<LarkBasePage<LarkBaseField>>('bitable.fields.list', {
      method: 'GET',
      path: `${tablePath(appToken, tableId)}/fields`,
      endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/fields',
      query: { page_size: FIELDS_PAGE_SIZE, page_token: pageToken },
    });
    for (const f of data.items ?? []) {
      const row = fieldRow(appToken, tableId, f);
      if (row) rows.push(row);
    }
    if (data.has_more && data.page_token) {
      pageToken = data.page_token;
      continue;
    }
    complete = !data.has_more;
    break;
  }
  const listed = new Set(rows.map((r) => r.recordKey));
  const actions = Array.isArray(event.action_list) ? (event.action_list as Array<Record<string, unknown>>) : [];
  const deleted = complete
    ? actions.filter((a) => a?.action === 'field_deleted' && str(a.field_id)).map((a) => `${appToken}:${tableId}:${str(a.field_id)}`).filter((k) => !listed.has(k))
    : [];
  await ctx.apply({ readSeq, rows: { base_fields: rows }, deleted: [{ stream: 'base_fields', keys: deleted }], marks: mark });
  return 'processed';
};

/**
 * Two record-change events of one table fold into one: their actions together, at the later
 * revision (or update time). The fold is read once, after both happened, so the later mark is
 * right for every record it names; a record whose applied mark is newer still is not read. Events
 * that order their changes differently (one with a revision, one without) don't fold.
 */
export const foldRecordChanges = (earlier: Record<string, unknown>, later: Record<string, unknown>): Record<string, unknown> | undefined => {
  if (str(earlier.file_token) === undefined || earlier.file_token !== later.file_token || str(earlier.table_id) === undefined || earlier.table_id !== later.table_id) return undefined;
  const rev = (e: Record<string, unknown>) => (typeof e.revision === 'number' && Number.isSafeInteger(e.revision) ? e.revision : undefined);
  const time = (e: Record<string, unknown>) => (typeof e.update_time === 'number' && Number.isFinite(e.update_time) ? e.update_time : undefined);
  const [r1, r2] = [rev(earlier), rev(later)];
  if ((r1 === undefined) !== (r2 === undefined)) return undefined;
  const [t1, t2] = [time(earlier), time(later)];
  if (r1 === undefined && (t1 === undefined) !== (t2 === undefined)) return undefined;
  const actions = (e: Record<string, unknown>) => (Array.isArray(e.action_list) ? (e.action_list as unknown[]) : []);
  return {
    ...later,
    action_list: [...actions(earlier), ...actions(later)],
    ...(r1 !== undefined && r2 !== undefined ? { revision: Math.max(r1, r2) } : {}),
    ...(t1 !== undefined && t2 !== undefined ? { update_time: Math.max(t1, t2) } : {}),
  };
};

export const BASE_MERGERS = { 'drive.file.bitable_record_changed_v1': foldRecordChanges };

export const BASE_EVENTS = {
  'drive.file.bitable_record_changed_v1': onRecordChanged,
  'drive.file.bitable_field_changed_v1': onFieldChanged,
};
