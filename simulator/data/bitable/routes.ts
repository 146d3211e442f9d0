import type { FastifyInstance, FastifyReply } from 'fastify';
import { admit, decodePageToken, encodePageToken, larkReply, ok, servePage, type DataApiContext } from '../support.js';
import { FilterError, compileGroup, type FilterGroup, type Predicate } from './filter.js';
import type { TenantIdentity } from '../../lark-simulator.js';
import type { BitableTenant } from './seed.js';
import { FieldType, baseDay, type SimBitableRecord, type SimTable, type SortSpec } from './table.js';

/** Base (bitable v1) routes (../shared/lark/bitable.md), and the Base nodes' get_node answer (docs-wiki.md §2.3). */

function pageSize(raw: string | undefined, max: number, fallback: number): number | undefined {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : undefined;
}

/** Base answers most errors with HTTP 200 and the code in the body (bitable.md §5). */
const fail = (reply: FastifyReply, code: number, msg: string, status = 200) => larkReply(reply, status, { code, msg });

/**
 * Lark signs attachment URLs per read: `url` and `tmp_url` differ on every read although the file
 * did not change (bitable.md §3 gives their shape). The simulator appends a `sig` query parameter
 * numbered per response; `file_token`, `name`, `type` and `size` stay as stored.
 */
function signUrl(url: unknown, sig: number): unknown {
  return typeof url === 'string' ? `${url}${url.includes('?') ? '&' : '?'}sig=${sig}` : url;
}

/** The fields with attachment cells re-signed; the stored cells are left as they are. */
function signAttachments(table: SimTable, fields: Record<string, unknown>, sig: number): Record<string, unknown> {
  let out = fields;
  for (const f of table.fields) {
    const cell = fields[f.field_name];
    if (f.type !== FieldType.Attachment || !Array.isArray(cell)) continue;
    if (out === fields) out = { ...fields };
    out[f.field_name] = cell.map((a: unknown) => {
      if (!a || typeof a !== 'object') return a;
      const file = { ...(a as Record<string, unknown>) };
      if ('url' in file) file.url = signUrl(file.url, sig);
      if ('tmp_url' in file) file.tmp_url = signUrl(file.tmp_url, sig);
      return file;
    });
  }
  return out;
}

/** A record as search and batch_get answer it, in response number `sig` (attachment URLs are signed with it). */
function view(table: SimTable, r: SimBitableRecord, fieldNames: string[] | undefined, automatic: boolean, sig: number): Record<string, unknown> {
  const picked = fieldNames ? Object.fromEntries(fieldNames.filter((n) => n in r.fields).map((n) => [n, r.fields[n]])) : r.fields;
  const fields = signAttachments(table, picked, sig);
  const out: Record<string, unknown> = { record_id: r.record_id, fields };
  if (automatic) {
    out.created_by = r.created_by;
    out.created_time = r.created_time;
    out.last_modified_by = r.last_modified_by;
    out.last_modified_time = r.last_modified_time;
  }
  return out;
}

interface BatchGetBody {
  record_ids: string[];
  user_id_type?: string;
  with_shared_url?: boolean;
  automatic_fields?: boolean;
}

const USER_ID_TYPES: ReadonlySet<unknown> = new Set(['open_id', 'union_id', 'user_id']);

/** What is wrong with a batch_get body (bitable.md §2.6), or undefined when it is well formed. */
function batchGetProblem(body: unknown): string | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return 'the body must be a JSON object';
  const b = body as Record<string, unknown>;
  const ids = b.record_ids;
  if (!Array.isArray(ids) || ids.length < 1 || ids.length > 100) return 'record_ids must be an array of 1 to 100 record ids';
  if (!ids.every((id) => typeof id === 'string')) return 'record_ids must be strings';
  // Person values come back as open ids whichever type is asked for, as in search.
  if (b.user_id_type !== undefined && !USER_ID_TYPES.has(b.user_id_type)) return 'user_id_type must be open_id, union_id or user_id';
  for (const flag of ['with_shared_url', 'automatic_fields'] as const) {
    if (b[flag] !== undefined && typeof b[flag] !== 'boolean') return `${flag} must be a boolean`;
  }
  return undefined;
}

/**
 * The table a call names, or undefined once the answer is sent: 1254040 unknown Base, 1254041
 * unknown table, HTTP 403 / 91403 for a table the caller may not read.
 */
export function locateTable(reply: FastifyReply, who: TenantIdentity, data: BitableTenant, appToken: string, tableId: string): SimTable | undefined {
  const base = data.bases.get(appToken);
  if (!base) {
    void fail(reply, 1254040, 'AppTokenNotFound');
    return undefined;
  }
  const table = base.tables.get(tableId);
  if (!table) {
    void fail(reply, 1254041, 'TableIdNotFound');
    return undefined;
  }
  // A per-user table admits only a listed user's token; a tenant token acts as the app, which
  // is not on the list.
  const userMayRead = !table.readers || (who.user !== undefined && table.readers.has(who.user.openId));
  if (table.denied || !userMayRead) {
    // Lark's "no permission on this Base/document" answer. The code and the HTTP 403 are taken
    // from the field report quoted in the issue, not from the shared notes: unconfirmed.
    void fail(reply, 91403, 'Forbidden', 403);
    return undefined;
  }
  return table;
}

export function registerBitableRoutes(app: FastifyInstance, ctx: DataApiContext, tenant: (tenantKey: string) => BitableTenant): void {
  type TableRoute = { Params: { app_token: string; table_id: string }; Querystring: Record<string, string | undefined> };
  /** Responses that rendered records so far: each signs its attachment URLs with the next number. */
  let rendered = 0;
  const nextSig = () => {
    rendered += 1;
    return rendered;
  };

  app.get<TableRoute>('/open-apis/bitable/v1/apps/:app_token/tables/:table_id/fields', async (req, reply) => {
    const who = admit(ctx, req, reply, 'bitable.fields.list', { perSecond: 20 });
    if (!who) return reply;
    const data = tenant(who.tenantKey);
    const { app_token: appToken, table_id: tableId } = req.params;
    data.requests.push({ api: 'fields', appToken, tableId, query: { ...req.query }, body: undefined, at: Date.now() });
    if (data.takeThrottle()) return fail(reply, 1254290, 'TooManyRequest');
    const size = pageSize(req.query.page_size, 100, 20);
    if (size === undefined) return fail(reply, 1254011, 'page_size must be between 1 and 100', 400);
    const offset = decodePageToken(req.query.page_token);
    if (offset === undefined) return fail(reply, 1254002, 'Fail: invalid page_token');
    const table = locateTable(reply, who, data, appToken, tableId);
    if (!table) return reply;
    if (req.query.view_id && !table.views.some((v) => v.view_id === req.query.view_id)) return fail(reply, 1254042, 'ViewIdNotFound');
    const items = table.fields.slice(offset, offset + size).map((f) => ({ ...f, is_hidden: false }));
    const next = offset + items.length;
    const hasMore = next < table.fields.length;
    const page = { items, has_more: hasMore, ...(hasMore ? { page_token: encodePageToken(next) } : {}), total: table.fields.length };
    return ok(reply, servePage(ctx, 'bitable.fields.list', page));
  });

  app.post<TableRoute & { Body: Record<string, unknown> | undefined }>(
    '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/search',
    async (req, reply) => {
      const who = admit(ctx, req, reply, 'bitable.records.search', { perSecond: 20 });
      if (!who) return reply;
      const data = tenant(who.tenantKey);
      const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
      const { app_token: appToken, table_id: tableId } = req.params;
      data.requests.push({ api: 'search', appToken, tableId, query: { ...req.query }, body: structuredClone(body), at: Date.now() });
      if (data.takeThrottle()) return fail(reply, 1254290, 'TooManyRequest');
      const size = pageSize(req.query.page_size, 500, 20);
      if (size === undefined) return fail(reply, 1254011, 'page_size must be between 1 and 500', 400);
      const offset = decodePageToken(req.query.page_token);
      if (offset === undefined) return fail(reply, 1254002, 'Fail: invalid page_token');
      const table = locateTable(reply, who, data, appToken, tableId);
      if (!table) return reply;

      const viewId = typeof body.view_id === 'string' && body.view_id !== '' ? body.view_id : undefined;
      const v = viewId ? table.views.find((x) => x.view_id === viewId) : undefined;
      if (viewId && !v) return fail(reply, 1254042, 'ViewIdNotFound');

      let fieldNames: string[] | undefined;
      if (body.field_names !== undefined) {
        const known = (n: unknown) => typeof n === 'string' && table.fields.some((f) => f.field_name === n);
        if (!Array.isArray(body.field_names) || body.field_names.length > 200 || !body.field_names.every(known)) {
          return fail(reply, 1254024, 'InvalidFieldNames');
        }
        fieldNames = body.field_names as string[];
      }

      let sort: SortSpec[] | undefined;
      if (body.sort !== undefined) {
        if (!Array.isArray(body.sort) || body.sort.length > 100) return fail(reply, 1254016, 'InvalidSort');
        for (const s of body.sort as Array<{ field_name?: unknown }>) {
          if (typeof s?.field_name !== 'string') return fail(reply, 1254016, 'InvalidSort');
          if (!table.fields.some((f) => f.field_name === s.field_name)) return fail(reply, 1254045, `FieldNameNotFound: ${s.field_name}`);
        }
        const specs = (body.sort as SortSpec[]).map((s) => ({ field_name: s.field_name, desc: s.desc === true }));
        sort = specs.length > 0 ? specs : undefined;
      }

      let keep: Predicate | undefined;
      const filter = body.filter as FilterGroup | undefined | null;
      const nonEmpty = (v: unknown) => Array.isArray(v) && v.length > 0;
      const hasFilter = !!filter && typeof filter === 'object' && (nonEmpty(filter.conditions) || nonEmpty(filter.children));
      if (hasFilter) {
        try {
          keep = compileGroup(table, filter, ctx.sim.now(), 0);
        } catch (err) {
          if (err instanceof FilterError) return fail(reply, err.code, err.message);
          throw err;
        }
      }
      // view_id only applies when neither filter nor sort is given (bitable.md §2.4).
      if (!hasFilter && !sort && v?.shows) keep = v.shows;
      // Records the caller may not read are filtered out before paging, total included.
      const forbidden = table.forbiddenRecords.size > 0 ? [...table.forbiddenRecords].sort() : undefined;
      if (forbidden) {
        const hidden = table.forbiddenRecords;
        const visible = keep;
        keep = visible ? (r) => !hidden.has(r.record_id) && visible(r) : (r) => !hidden.has(r.record_id);
      }

      // Keyed by everything the result depends on; "Today" moves with the day.
      const scanKey = JSON.stringify({ f: hasFilter ? filter : null, s: sort ?? null, v: !hasFilter && !sort ? viewId : null, d: baseDay(ctx.sim.now()), x: forbidden });
      const indices = keep || sort ? table.scan(scanKey, keep, sort) : undefined;
      const { records, matched } = table.page(indices, offset, size);
      const next = offset + records.length;
      const hasMore = next < matched;
      const sig = nextSig();
      const page = {
        items: records.map((r) => view(table, r, fieldNames, body.automatic_fields === true, sig)),
        has_more: hasMore,
        ...(hasMore ? { page_token: encodePageToken(next) } : {}),
        total: matched + table.totalSkew,
      };
      return ok(reply, servePage(ctx, 'bitable.records.search', page));
    },
  );

  app.post<TableRoute & { Body: unknown }>('/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/batch_get', async (req, reply) => {
    const who = admit(ctx, req, reply, 'bitable.records.batch_get', { perSecond: 20 });
    if (!who) return reply;
    const data = tenant(who.tenantKey);
    const { app_token: appToken, table_id: tableId } = req.params;
    data.requests.push({ api: 'batch_get', appToken, tableId, query: { ...req.query }, body: structuredClone(req.body), at: Date.now() });
    if (data.takeThrottle()) return fail(reply, 1254290, 'TooManyRequest');
    const problem = batchGetProblem(req.body);
    if (problem) return fail(reply, 1254001, `WrongRequestBody: ${problem}`);
    const body = req.body as BatchGetBody;
    const table = locateTable(reply, who, data, appToken, tableId);
    if (!table) return reply;
    // Advanced permissions on and no manage right: success with nothing in it (bitable.md §2.6).
    if (table.silentBatchGet) return ok(reply, { records: [], absent_record_ids: [], forbidden_record_ids: [] });

    const sig = nextSig();
    const records: Array<Record<string, unknown>> = [];
    const absent: string[] = [];
    const forbidden: string[] = [];
    // In the order asked, each id once (Lark's handling of repeated ids is not documented).
    for (const id of new Set(body.record_ids)) {
      const r = table.get(id);
      if (!r) absent.push(id);
      else if (table.forbiddenRecords.has(id)) forbidden.push(id);
      else {
        const out = view(table, r, undefined, body.automatic_fields === true, sig);
        // The notes name shared_url but give no example: this link shape is made up.
        if (body.with_shared_url === true) out.shared_url = `https://${who.tenantKey}.feishu.cn/record/${appToken}_${tableId}_${r.record_id}`;
        records.push(out);
      }
    }
    return ok(reply, { records, absent_record_ids: absent, forbidden_record_ids: forbidden });
  });
}

/**
 * get_node's answer for the Base module's two wiki nodes (a Base and a docx), as the simulator has
 * always given it (docs-wiki.md §2.3). The route lives in docs/routes.ts, which asks this for
 * tokens its own wiki does not hold.
 */
export function bitableWikiNode(data: BitableTenant, tenantKey: string, token: string, objType: string): Record<string, unknown> | undefined {
  const node = objType === 'wiki' ? data.nodes.get(token) : [...data.nodes.values()].find((n) => n.obj_token === token && n.obj_type === objType);
  if (!node) return undefined;
  return {
    ...node,
    node_type: 'origin',
    parent_node_token: '',
    origin_node_token: node.node_token,
    origin_space_id: node.space_id,
    has_child: false,
    obj_create_time: '1700000000',
    obj_edit_time: '1700000000',
    node_create_time: '1700000000',
    creator: `ou_${tenantKey}-1`,
    owner: `ou_${tenantKey}-1`,
    node_creator: `ou_${tenantKey}-1`,
  };
}
