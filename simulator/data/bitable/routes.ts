import type { FastifyInstance, FastifyReply } from 'fastify';
import { admit, decodePageToken, encodePageToken, larkReply, ok, type DataApiContext } from '../support.js';
import { FilterError, compileGroup, type FilterGroup, type Predicate } from './filter.js';
import type { BitableTenant } from './seed.js';
import { baseDay, type SimBitableRecord, type SimTable, type SortSpec } from './table.js';

/** Base (bitable v1) and wiki get_node routes (../shared/lark/bitable.md, docs-wiki.md §2.3). */

function pageSize(raw: string | undefined, max: number, fallback: number): number | undefined {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : undefined;
}

/** Base answers most errors with HTTP 200 and the code in the body (bitable.md §5). */
const fail = (reply: FastifyReply, code: number, msg: string, status = 200) => larkReply(reply, status, { code, msg });

function view(r: SimBitableRecord, fieldNames: string[] | undefined, automatic: boolean): Record<string, unknown> {
  const fields = fieldNames ? Object.fromEntries(fieldNames.filter((n) => n in r.fields).map((n) => [n, r.fields[n]])) : r.fields;
  const out: Record<string, unknown> = { record_id: r.record_id, fields };
  if (automatic) {
    out.created_by = r.created_by;
    out.created_time = r.created_time;
    out.last_modified_by = r.last_modified_by;
    out.last_modified_time = r.last_modified_time;
  }
  return out;
}

export function registerBitableRoutes(app: FastifyInstance, ctx: DataApiContext, tenant: (tenantKey: string) => BitableTenant): void {
  type TableRoute = { Params: { app_token: string; table_id: string }; Querystring: Record<string, string | undefined> };

  const locate = (reply: FastifyReply, data: BitableTenant, appToken: string, tableId: string): SimTable | undefined => {
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
    return table;
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
    const table = locate(reply, data, appToken, tableId);
    if (!table) return reply;
    if (req.query.view_id && !table.views.some((v) => v.view_id === req.query.view_id)) return fail(reply, 1254042, 'ViewIdNotFound');
    const items = table.fields.slice(offset, offset + size).map((f) => ({ ...f, is_hidden: false }));
    const next = offset + items.length;
    const hasMore = next < table.fields.length;
    return ok(reply, { items, has_more: hasMore, ...(hasMore ? { page_token: encodePageToken(next) } : {}), total: table.fields.length });
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
      const table = locate(reply, data, appToken, tableId);
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

      // Keyed by everything the result depends on; "Today" moves with the day.
      const scanKey = JSON.stringify({ f: hasFilter ? filter : null, s: sort ?? null, v: !hasFilter && !sort ? viewId : null, d: baseDay(ctx.sim.now()) });
      const indices = keep || sort ? table.scan(scanKey, keep, sort) : undefined;
      const { records, matched } = table.page(indices, offset, size);
      const next = offset + records.length;
      const hasMore = next < matched;
      return ok(reply, {
        items: records.map((r) => view(r, fieldNames, body.automatic_fields === true)),
        has_more: hasMore,
        ...(hasMore ? { page_token: encodePageToken(next) } : {}),
        total: matched + table.totalSkew,
      });
    },
  );

  app.get<{ Querystring: Record<string, string | undefined> }>('/open-apis/wiki/v2/spaces/get_node', async (req, reply) => {
    const who = admit(ctx, req, reply, 'wiki.get_node', { perMinute: 100 });
    if (!who) return reply;
    const data = tenant(who.tenantKey);
    const token = req.query.token ?? '';
    const objType = req.query.obj_type ?? 'wiki';
    if (!token) return larkReply(reply, 400, { code: 131002, msg: 'param error: token is required' });
    const node =
      objType === 'wiki'
        ? data.nodes.get(token)
        : [...data.nodes.values()].find((n) => n.obj_token === token && n.obj_type === objType);
    if (!node) return larkReply(reply, 400, { code: 131005, msg: 'not found' });
    return ok(reply, {
      node: {
        ...node,
        node_type: 'origin',
        parent_node_token: '',
        origin_node_token: node.node_token,
        origin_space_id: node.space_id,
        has_child: false,
        obj_create_time: '1700000000',
        obj_edit_time: '1700000000',
        node_create_time: '1700000000',
        creator: `ou_${who.tenantKey}-1`,
        owner: `ou_${who.tenantKey}-1`,
        node_creator: `ou_${who.tenantKey}-1`,
      },
    });
  });
}
