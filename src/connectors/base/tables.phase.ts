import { Type } from '@sinclair/typebox';
import { SyncError, isItemFailure } from '../../sync/sync-errors.js';
import { definePhase, type PageResult, type SyncContext } from '../../sync/sync-module.js';
import type { StreamRow } from '../../sync/streams.js';
import type { ItemError } from '../../sync/sync.tables.js';
import { tableRef, type BaseConfigType, type BaseTableEntry } from './config.js';
import {
  FIELD_TYPE_MODIFIED_TIME,
  type LarkBaseField,
  type LarkBasePage,
  type LarkBaseRecord,
  type LarkBatchGet,
  type LarkWikiNode,
} from './lark-types.js';

const DAY_MS = 86_400_000;
/** Both are Lark's maxima (bitable.md §2.3, §2.4): fewer calls against a 20/s budget. */
const RECORDS_PAGE_SIZE = 500;
const FIELDS_PAGE_SIZE = 100;
/** records/batch_get's maximum (bitable.md §2.6). */
const BATCH_GET_SIZE = 100;

type Ctx = SyncContext<BaseConfigType>;

/** Progress through one configured table within a run. */
interface TablePass {
  /** position in the config, for messages */
  entry: number;
  appToken: string;
  tableId: string;
  viewId: string | null;
  /** `confirm`: deletion candidates of a full pass are read back with batch_get */
  step: 'fields' | 'records' | 'verify' | 'confirm';
  pageToken: string | null;
  /** in `confirm`: the last candidate key read back */
  confirmAfter?: string | null;
  /** field ids listed so far (a table has at most 300) */
  fieldIds: string[];
  /** name of the first ModifiedTime field, the one incremental runs filter on */
  modifiedField: string | null;
  /** day sent as ExactDate in the modified-time filter; null = the pass lists every record */
  filterFromMs: number | null;
  /** `total` of the first and of the latest records page */
  firstTotal: number | null;
  lastTotal: number | null;
  maxModifiedMs: number | null;
  recordPages: number;
  /** false once Lark said has_more without a page_token: the listing stopped early */
  reachedEnd: boolean;
  /** whether the table had rows that are not deleted when this pass began (absent in older states) */
  hadRows?: boolean;
}

interface State {
  v: 1;
  /** the config as it was when the run started, so a resumed run walks the same list */
  tables: BaseTableEntry[];
  index: number;
  table: TablePass | null;
  /** partition -> max last_modified_time of the last complete pass of that table */
  cursors: Record<string, number>;
  /** partitions already read in this run */
  visited: string[];
  /** tables finished in this run, and tables that failed (absent in older states) */
  tablesOk?: number;
  tablesFailed?: number;
  /** the table before this one failed because Lark kept failing */
  lastUnavailable?: boolean;
}

const partitionOf = (t: { appToken: string; tableId: string }) => `${t.appToken}:${t.tableId}`;
const tablePath = (t: { appToken: string; tableId: string }) =>
  `/open-apis/bitable/v1/apps/${encodeURIComponent(t.appToken)}/tables/${encodeURIComponent(t.tableId)}`;

function epochMs(v: unknown): number | null {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : null;
}

function isoOrNull(v: unknown): string | null {
  const ms = epochMs(v);
  // ISO strings rather than Date objects: the content hash serialises a Date as `{}`.
  return ms === null ? null : new Date(ms).toISOString();
}

export function recordRow(appToken: string, tableId: string, r: LarkBaseRecord): StreamRow | undefined {
  if (!r.record_id) return undefined;
  return {
    recordKey: `${appToken}:${tableId}:${r.record_id}`,
    partition: `${appToken}:${tableId}`,
    raw: r,
    columns: {
      app_token: appToken,
      table_id: tableId,
      record_id: r.record_id,
      fields: r.fields ?? {},
      created_by: r.created_by ?? null,
      created_time: isoOrNull(r.created_time),
      last_modified_by: r.last_modified_by ?? null,
      last_modified_time: isoOrNull(r.last_modified_time),
    },
  };
}

export function fieldRow(appToken: string, tableId: string, f: LarkBaseField): StreamRow | undefined {
  if (!f.field_id) return undefined;
  return {
    recordKey: `${appToken}:${tableId}:${f.field_id}`,
    partition: `${appToken}:${tableId}`,
    raw: f,
    columns: {
      app_token: appToken,
      table_id: tableId,
      field_id: f.field_id,
      field_name: f.field_name ?? null,
      type: typeof f.type === 'number' ? f.type : null,
      ui_type: f.ui_type ?? null,
      is_primary: typeof f.is_primary === 'boolean' ? f.is_primary : null,
    },
  };
}

/** Lark's errors name the endpoint template only; say which configured table failed. */
async function forTable<T>(where: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof SyncError) throw new SyncError(err.errorClass, `${where}: ${err.message}`);
    throw err;
  }
}

async function resolveWikiNode(ctx: Ctx, entry: number, nodeToken: string): Promise<string> {
  const where = `tables[${entry}].url (wiki node ${nodeToken})`;
  const data = await forTable(where, () =>
    ctx.lark.call<{ node?: LarkWikiNode }>('wiki.get_node', {
      method: 'GET',
      path: '/open-apis/wiki/v2/spaces/get_node',
      query: { token: nodeToken, obj_type: 'wiki' },
    }),
  );
  const node = data.node;
  if (node?.obj_type !== 'bitable' || !node.obj_token) {
    const what = node?.obj_type ? `the wiki page is a ${node.obj_type}` : 'Lark returned no node';
    throw new SyncError('invalid_config', `${where}: ${what}, not a Base (obj_type "bitable"); give a wiki page that is a Base, or the Base's appToken`);
  }
  return node.obj_token;
}

async function openTable(ctx: Ctx, state: State): Promise<TablePass> {
  const entry = state.index;
  const config = state.tables[entry];
  const ref = config ? tableRef(config) : undefined;
  if (!ref) {
    // The schema admits only parseable entries; this guards a config edited by hand in the database.
    throw new SyncError('invalid_config', `tables[${entry}]: needs appToken and tableId, or a Base URL with ?table=`);
  }
  const appToken = ref.kind === 'wiki' ? await resolveWikiNode(ctx, entry, ref.nodeToken) : ref.appToken;
  // Read before this pass writes anything to the table (rows of other tables may be committing).
  const hadRows = await ctx.read.hasLiveRows('base_records', partitionOf({ appToken, tableId: ref.tableId }));
  return {
    entry,
    appToken,
    tableId: ref.tableId,
    viewId: ref.viewId,
    step: 'fields',
    pageToken: null,
    fieldIds: [],
    modifiedField: null,
    filterFromMs: null,
    firstTotal: null,
    lastTotal: null,
    maxModifiedMs: null,
    recordPages: 0,
    reachedEnd: true,
    hadRows,
  };
}

/**
 * Where an incremental pass starts, or null for a pass over every record.
 *
 * Lark compares dates at day granularity: `ExactDate` is truncated to midnight in the base's time
 * zone, which larksync does not know. The UTC midnight of the cursor's day minus one more day is
 * at least one whole local day before the cursor in every zone from UTC-12 to UTC+14, so
 * `isGreater` still includes everything modified on or after the cursor's local day. The overlap
 * re-reads up to two days of changes; the content hash makes those rows no-ops.
 */
function incrementalFrom(ctx: Ctx, state: State, t: TablePass): number | null {
  // A full run lists everything so that it can sweep deletions.
  if (ctx.mode === 'full') return null;
  // Lark ignores view_id once a filter is present: a filtered read would pull in records outside
  // the configured view. Views are re-read whole; unchanged rows cost no writes.
  if (t.viewId) return null;
  // Nothing to filter on: a full pass, cheap in writes thanks to the content hash. (A ModifiedTime
  // field set to track only some columns misses edits to the others until the next full run.)
  if (!t.modifiedField) return null;
  const cursor = state.cursors[partitionOf(t)];
  if (cursor === undefined) return null;
  return Math.floor(cursor / DAY_MS) * DAY_MS - DAY_MS;
}

async function fieldsPage(ctx: Ctx, state: State, t: TablePass): Promise<PageResult<State>> {
  const data = await forTable(`tables[${t.entry}] (${t.appToken}/${t.tableId})`, () =>
    ctx.lark.call<LarkBasePage<LarkBaseField>>('bitable.fields.list', {
      method: 'GET',
      path: `${tablePath(t)}/fields`,
      endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/fields',
      query: { page_size: FIELDS_PAGE_SIZE, page_token: t.pageToken ?? undefined },
    }),
  );
  const items = data.items ?? [];
  const rows = items.map((f) => fieldRow(t.appToken, t.tableId, f)).filter((r): r is StreamRow => r !== undefined);
  const fieldIds = [...new Set([...t.fieldIds, ...rows.map((r) => String(r.columns.field_id))])];
  const modifiedField =
    t.modifiedField ?? items.find((f) => f.type === FIELD_TYPE_MODIFIED_TIME && f.field_name)?.field_name ?? null;
  if (data.has_more && data.page_token) {
    return { rows: { base_fields: rows }, state: { ...state, table: { ...t, fieldIds, modifiedField, pageToken: data.page_token } }, done: false };
  }
  // The schema is small and always listed whole, so its deletions are judged every run, when the
  // listing provably ended (no has_more without a token, and no fewer fields than Lark counted).
  // No API reads a field back by id: a field is deleted once two complete listings miss it.
  const complete = !data.has_more && (typeof data.total !== 'number' || fieldIds.length >= data.total);
  if (!complete) {
    ctx.log.warn({ runId: ctx.runId, partition: partitionOf(t), listed: fieldIds.length, total: data.total }, 'base fields listing incomplete: not sweeping');
  }
  const next: TablePass = { ...t, fieldIds, modifiedField, step: 'records', pageToken: null };
  next.filterFromMs = incrementalFrom(ctx, state, next);
  return {
    rows: { base_fields: rows },
    state: { ...state, table: next },
    done: false,
    sweep: complete ? [{ stream: 'base_fields', partition: partitionOf(t), confirmBy: 'relist' }] : undefined,
  };
}

/**
 * Records in Lark's own order (no sort). Sorting by modified time would let the cursor advance
 * page by page, but an edit during the pass then moves that record to the end and shifts every
 * later offset back by one, so a record that was never read could fall behind an advanced cursor.
 * The natural order does not move on edits, and the cursor advances only after a pass that
 * provably saw every record (see `verify`), so an interrupted or shifted pass is simply repeated.
 * Records edited during the pass behind the read position carry a modified time after the pass
 * started, which the next run's day-plus overlap covers. (Sorting would also make Lark ignore
 * view_id.)
 */
async function recordsPage(ctx: Ctx, state: State, t: TablePass): Promise<PageResult<State>> {
  const body: Record<string, unknown> = { automatic_fields: true };
  if (t.viewId) body.view_id = t.viewId;
  if (t.filterFromMs !== null && t.modifiedField) {
    body.filter = {
      conjunction: 'and',
      conditions: [{ field_name: t.modifiedField, operator: 'isGreater', value: ['ExactDate', String(t.filterFromMs)] }],
    };
  }
  const data = await forTable(`tables[${t.entry}] (${t.appToken}/${t.tableId})`, () =>
    ctx.lark.call<LarkBasePage<LarkBaseRecord>>('bitable.records.search', {
      method: 'POST',
      path: `${tablePath(t)}/records/search`,
      endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/search',
      query: { page_size: RECORDS_PAGE_SIZE, page_token: t.pageToken ?? undefined },
      body,
    }),
  );
  const items = data.items ?? [];
  const rows = items.map((r) => recordRow(t.appToken, t.tableId, r)).filter((r): r is StreamRow => r !== undefined);
  let maxModifiedMs = t.maxModifiedMs;
  for (const r of items) {
    const ms = epochMs(r.last_modified_time);
    if (ms !== null && (maxModifiedMs === null || ms > maxModifiedMs)) maxModifiedMs = ms;
  }
  const total = typeof data.total === 'number' ? data.total : null;
  const progressed: TablePass = {
    ...t,
    maxModifiedMs,
    firstTotal: t.recordPages === 0 ? total : t.firstTotal,
    lastTotal: total ?? t.lastTotal,
    recordPages: t.recordPages + 1,
  };
  const next: TablePass =
    data.has_more && data.page_token
      ? { ...progressed, pageToken: data.page_token }
      : { ...progressed, step: 'verify', pageToken: null, reachedEnd: !data.has_more };
  return { rows: { base_records: rows }, state: { ...state, table: next }, done: false };
}

/**
 * Runs once the last records page is committed. Offsets shift when records are deleted (or added
 * in the middle) between pages, so a pass can end "normally" having skipped records. Counting the
 * distinct records this run stored against the `total` Lark reported at the start and at the end
 * catches most of that: only a pass that saw at least as many records as both may advance the
 * cursor or, in a full run, look for deletions. Anything less leaves both alone; the next run
 * repeats the window.
 *
 * A count is not a set, though (review H2): a delete plus an add between pages hides a skipped
 * record from it. So the records a full pass did not see are only candidates, read back with
 * batch_get (the `confirm` step): only those Lark names absent are marked deleted, and those it
 * returns are stored afresh.
 */
async function verify(ctx: Ctx, state: State, t: TablePass): Promise<PageResult<State>> {
  const partition = partitionOf(t);
  // Distinct records of this table that this run stored (the engine keeps them for the sweep).
  const seen = await ctx.read.countSeen('base_records', partition);
  const totals = [t.firstTotal, t.lastTotal].filter((n): n is number => n !== null);
  const complete = t.reachedEnd && totals.length > 0 && seen >= Math.max(...totals);
  const cursors = { ...state.cursors };
  if (!complete) {
    ctx.log.warn(
      { runId: ctx.runId, partition, seen, firstTotal: t.firstTotal, lastTotal: t.lastTotal, reachedEnd: t.reachedEnd },
      'base records listing incomplete (records changed between pages?): cursor kept, no deletions marked',
    );
    return finishTable(state, t, cursors);
  }
  if (t.maxModifiedMs !== null) cursors[partition] = Math.max(cursors[partition] ?? 0, t.maxModifiedMs);
  // A table that had no rows when this pass began holds only rows this pass stored, every one of
  // them seen: there is nothing to sweep, and a million-row anti-join is skipped.
  if (ctx.mode !== 'full' || t.filterFromMs !== null || t.hadRows === false) return finishTable(state, t, cursors);
  return {
    rows: {},
    state: { ...state, cursors, table: { ...t, step: 'confirm', confirmAfter: null } },
    done: false,
    sweep: [{ stream: 'base_records', partition, confirmBy: 'read' }],
  };
}

/** Reads back up to 100 deletion candidates; the table is finished once none are left. */
async function confirmPage(ctx: Ctx, state: State, t: TablePass): Promise<PageResult<State>> {
  const partition = partitionOf(t);
  const keys = await ctx.read.deleteCandidates('base_records', partition, t.confirmAfter ?? null, BATCH_GET_SIZE);
  if (keys.length === 0) return finishTable(state, t, state.cursors);
  const ids = keys.map((k) => k.slice(partition.length + 1));
  const data = await forTable(`tables[${t.entry}] (${t.appToken}/${t.tableId})`, () =>
    ctx.lark.call<LarkBatchGet>('bitable.records.batch_get', {
      method: 'POST',
      path: `${tablePath(t)}/records/batch_get`,
      endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/batch_get',
      body: { record_ids: ids, automatic_fields: true },
    }),
  );
  const found = (data.records ?? []).filter((r) => r.record_id !== undefined);
  const foundIds = new Set(found.map((r) => r.record_id));
  // Gone only when Lark says so: with advanced permissions an answer can leave ids out of every list.
  const absent = new Set((data.absent_record_ids ?? []).filter((id) => !foundIds.has(id)));
  const deleted = keys.filter((_, i) => absent.has(ids[i]!));
  const alive = keys.filter((_, i) => !absent.has(ids[i]!));
  const rows = found.map((r) => recordRow(t.appToken, t.tableId, r)).filter((r): r is StreamRow => r !== undefined);
  const confirm = [{ stream: 'base_records' as const, partition, deleted, alive }];
  if (keys.length < BATCH_GET_SIZE) return { ...finishTable(state, t, state.cursors), rows: { base_records: rows }, confirm };
  return { rows: { base_records: rows }, confirm, state: { ...state, table: { ...t, confirmAfter: keys.at(-1) ?? null } }, done: false };
}

/** The table is done: on to the next one. */
function finishTable(state: State, _t: TablePass, cursors: Record<string, number>): PageResult<State> {
  const index = state.index + 1;
  const done = index >= state.tables.length;
  const next: State = { ...state, index, table: null, cursors, tablesOk: (state.tablesOk ?? 0) + 1, lastUnavailable: false };
  return { rows: {}, state: next, done };
}

/** What a user can do about a table that failed. */
function fixHint(err: SyncError): string {
  switch (err.errorClass) {
    case 'permission_denied':
      return 'add the app to this Base as a collaborator (the Base\'s "..." menu, More, Add document app / 添加文档应用), with manage rights if the Base uses advanced permissions';
    case 'not_found':
      return 'the Base or table no longer exists or the id is wrong: fix or remove this entry of tables';
    case 'upstream_unavailable':
      return 'Lark kept failing on this table; the next run tries it again';
    default:
      return 'fix this entry of tables';
  }
}

/**
 * A table that failed (no permission, gone, a page Lark keeps failing) is recorded on the run and
 * the other tables go on; the run ends `partial`. When no table of the run could be read at all,
 * the run fails with the last table's error instead.
 */
function skipTable(ctx: Ctx, state: State, entry: number, id: string, err: SyncError): PageResult<State> {
  const failed = (state.tablesFailed ?? 0) + 1;
  const index = entry + 1;
  const done = index >= state.tables.length;
  if (done && (state.tablesOk ?? 0) === 0) throw err;
  const itemError: ItemError = { item: 'base_table', id, errorClass: err.errorClass, message: `${err.message}; ${fixHint(err)}` };
  ctx.log.warn({ runId: ctx.runId, table: id, errorClass: err.errorClass }, 'base table failed: recorded on the run, the other tables go on');
  const lastUnavailable = err.errorClass === 'upstream_unavailable';
  return { rows: {}, state: { ...state, index, table: null, tablesFailed: failed, lastUnavailable }, done, itemErrors: [itemError] };
}

function entryId(state: State, entry: number, t: TablePass | null): string {
  if (t) return `${t.appToken}/${t.tableId}`;
  const config = state.tables[entry];
  const ref = config ? tableRef(config) : undefined;
  if (ref?.kind === 'ids') return `${ref.appToken}/${ref.tableId}`;
  if (ref?.kind === 'wiki') return `wiki:${ref.nodeToken}/${ref.tableId}`;
  return `tables[${entry}]`;
}

export const tablesPhase = definePhase<State, BaseConfigType>({
  name: 'base_tables',
  stateSchema: Type.Object({
    v: Type.Literal(1),
    tables: Type.Array(Type.Object({}, { additionalProperties: true })),
    index: Type.Integer({ minimum: 0 }),
    table: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
    cursors: Type.Record(Type.String(), Type.Number()),
    visited: Type.Array(Type.String()),
    tablesOk: Type.Optional(Type.Integer({ minimum: 0 })),
    tablesFailed: Type.Optional(Type.Integer({ minimum: 0 })),
    lastUnavailable: Type.Optional(Type.Boolean()),
  }),
  tracksDeletions: ['base_records', 'base_fields'],
  init: (ctx, previous) => ({
    v: 1,
    tables: structuredClone(ctx.config.tables),
    index: 0,
    table: null,
    // Only cursors of complete passes are ever stored, so even a failed run's state is safe to reuse.
    cursors: previous?.v === 1 ? { ...previous.cursors } : {},
    visited: [],
    tablesOk: 0,
    tablesFailed: 0,
  }),
  // Every step reads only its state and Lark, except `verify`, which counts what the earlier
  // pages stored, and `confirm`, which reads the candidates the verify page's commit stored:
  // both wait for the pages before them to commit.
  canReadAhead: (state) => state.table?.step !== 'verify' && state.table?.step !== 'confirm',
  async readPage(ctx, state) {
    if (state.index >= state.tables.length) return { rows: {}, state, done: true };
    let table = state.table;
    try {
      if (!table) {
        table = await openTable(ctx, state);
        const partition = partitionOf(table);
        if (state.visited.includes(partition)) {
          // The same table twice (say by id and by URL): a second pass would share the first one's
          // cursor and seen keys and muddle both the completeness check and the sweep.
          ctx.log.warn({ runId: ctx.runId, entry: table.entry, partition }, 'base table configured twice: later entry skipped');
          const index = state.index + 1;
          return { rows: {}, state: { ...state, index }, done: index >= state.tables.length };
        }
        state = { ...state, visited: [...state.visited, partition] };
      }
      switch (table.step) {
        case 'fields':
          return await fieldsPage(ctx, state, table);
        case 'records':
          return await recordsPage(ctx, state, table);
        case 'verify':
          return await verify(ctx, state, table);
        case 'confirm':
          return await confirmPage(ctx, state, table);
      }
    } catch (err) {
      // A page Lark keeps failing is the table's; a second table in a row failing that way is an
      // outage, which stops the run rather than trying every table.
      if (!isItemFailure(err, { unavailable: !state.lastUnavailable })) throw err;
      return skipTable(ctx, state, state.index, entryId(state, state.index, table), err);
    }
  },
});
