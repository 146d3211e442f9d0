import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TenantIdentity } from '../../lark-simulator.js';
import type { SimLarkUser } from '../../oauth/users.js';
import { decodePageToken, encodePageToken, larkReply, ok, servePage, type DataApiContext, type SimLimit } from '../support.js';
import { fillerLines, markdownOf, rawOf, type NameOf, type Rendered, type SimBlock } from './content.js';
import { CONTENT_TYPES, csvBytes, docxBytes, pdfBytes, xlsxBytes, type FileExt } from './files.js';
import {
  ANY_APP,
  DOCS_FIVE_PER_SECOND,
  appPrincipal,
  type Access,
  type DocsApi,
  type DocsCall,
  type DocsTenant,
  type SimDocObject,
  type SimExport,
  type SimNode,
} from './store.js';

/**
 * Drive, wiki, docx and docs content routes (../shared/lark/docs-wiki.md, docs-content.md,
 * corrections.md, limits-and-errors.md). Where the notes are silent the choice is marked
 * "(unconfirmed)" here and is the tolerant one.
 */

export interface DocsFaults {
  /** Share of admitted docs calls that fail (0.05 = 5 %). */
  rate: number;
  /** Seed of the generator deciding which calls fail. */
  seed: string;
  /** Only these APIs (default: every docs API). */
  apis?: DocsApi[];
}

export interface DocsOptions {
  /** Per-API limits replacing the defaults (null = no limit). */
  limits: Partial<Record<DocsApi, SimLimit | null>>;
  /**
   * Whether the 5/s of the docx/docs content family counts per app across all tenants ('app',
   * the default: the notes say "per app" and leave per-tenant unconfirmed) or per app and tenant.
   */
  contentLimitScope: 'app' | 'tenant';
  /** Random faults; undefined = none. */
  faults: DocsFaults | undefined;
}

/**
 * Frequency limits: drive listing 20/s (corrections.md), metas 1000/min and 50/s (docs-content.md
 * §5.4), the docx reads and docs/v1/content 5/s per app. Docx reads answer HTTP 400 over the limit
 * (corrections.md); docs/v1/content follows the general rule, HTTP 429 (limits-and-errors.md §3;
 * its page names no status: unconfirmed). The wiki pages' limits are not in the notes: listing a
 * node's children is 100/min by Lark's own page for it ("获取知识空间子节点列表", 接口频率限制
 * 100 次/分钟, open.larkoffice.com .../wiki-v2/space-node/list); spaces.list and get_node get the
 * same 100/min, as the simulator always had (unconfirmed). Downloads and export tasks have no
 * stated limit and get none.
 */
export const defaultDocsLimits: Record<DocsApi, SimLimit | null> = {
  'drive.files.list': { perSecond: 20 },
  'drive.metas.batch_query': { perSecond: 50, perMinute: 1000 },
  'drive.files.download': null,
  'drive.export.create': null,
  'drive.export.get': null,
  'drive.export.download': null,
  'wiki.spaces.list': { perMinute: 100 },
  'wiki.nodes.list': { perMinute: 100 },
  'wiki.get_node': { perMinute: 100 },
  'docs.content': { perSecond: 5 },
  'docx.document.get': { perSecond: 5, status: 400 },
  'docx.raw_content': { perSecond: 5, status: 400 },
  'docx.blocks': { perSecond: 5, status: 400 },
  'docx.block.get': { perSecond: 5, status: 400 },
  'docx.block.children': { perSecond: 5, status: 400 },
};

export interface DocsRouteDeps {
  tenant: (tenantKey: string) => DocsTenant;
  options: DocsOptions;
  /** Whether this admitted call is one of the random faults. */
  fault: (api: DocsApi) => boolean;
  /** A person of the tenant (names of @mentions, ids of owners). */
  user: (tenantKey: string, openId: string) => SimLarkUser | undefined;
  /** get_node's answer for nodes the docs store does not hold (the Base module's wiki nodes). */
  otherNode?: (tenantKey: string, token: string, objType: string) => Record<string, unknown> | undefined;
}

type Query = Record<string, string | undefined>;
type DocsRequest = FastifyRequest & { docsCall?: DocsCall };

interface Gate {
  who: TenantIdentity;
  data: DocsTenant;
  /** `app:<appId>` or the user's open_id. */
  p: string;
}

const fail = (reply: FastifyReply, status: number, code: number, msg: string) => larkReply(reply, status, { code, msg });

/** The random fault each family answers: its documented internal error. */
const FAULTS: Record<string, { status: number; code: number; msg: string }> = {
  drive: { status: 500, code: 1061001, msg: 'internal error' },
  metas: { status: 503, code: 1069704, msg: 'service unavailable' },
  wiki: { status: 400, code: 131001, msg: 'rpc fail' },
  docs: { status: 500, code: 2889905, msg: 'internal error' },
  // The docx list has no internal-error code in the notes: the generic 1500 (limits-and-errors.md §5).
  docx: { status: 500, code: 1500, msg: 'internal error' },
};
const familyOf = (api: DocsApi) => (api === 'drive.metas.batch_query' ? 'metas' : (api.split('.')[0] ?? 'drive'));

function intParam(raw: string | undefined, fallback: number): number | undefined {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  return Number.isInteger(n) ? n : undefined;
}

const URL_PATH: Record<string, string> = {
  docx: 'docx',
  // Legacy docs and mind notes: URL shapes not in the notes (unconfirmed).
  doc: 'docs',
  mindnote: 'mindnotes',
  sheet: 'sheets',
  bitable: 'base',
  file: 'file',
  folder: 'drive/folder',
};

export function registerDocsRoutes(app: FastifyInstance, ctx: DataApiContext, deps: DocsRouteDeps): void {
  const { options } = deps;
  const host = (tenantKey: string) => `https://${tenantKey}.feishu.cn`;
  const urlOf = (tenantKey: string, type: string, token: string) => `${host(tenantKey)}/${URL_PATH[type] ?? 'file'}/${token}`;

  /** Token check, call log, frequency limit, random fault: the context of an admitted call. */
  const gate = (req: FastifyRequest, reply: FastifyReply, api: DocsApi, target: string | undefined): Gate | undefined => {
    const who = ctx.sim.authorizeCaller(req, reply);
    if (!who) return undefined;
    const data = deps.tenant(who.tenantKey);
    const p = who.user ? who.user.openId : appPrincipal(who.appId);
    (req as DocsRequest).docsCall = data.record(api, p, target);
    const limit = api in options.limits ? options.limits[api] : defaultDocsLimits[api];
    if (limit) {
      const perApp = options.contentLimitScope === 'app' && DOCS_FIVE_PER_SECOND.includes(api);
      // The get_node key is the one the Base routes always used, so its window is unchanged.
      const key = perApp ? `${who.appId}:*:${api}` : `${who.appId}:${who.tenantKey}:${api}`;
      if (!ctx.limiter.admit(reply, key, limit)) return undefined;
    }
    if (deps.fault(api)) {
      const f = FAULTS[familyOf(api)] ?? FAULTS.drive!;
      void fail(reply, f.status, f.code, f.msg);
      return undefined;
    }
    ctx.onPage?.(api, who);
    return { who, data, p };
  };

  /** Notes each call's answer in the call log. */
  const route = {
    onResponse: async (req: FastifyRequest, reply: FastifyReply) => {
      const call = (req as DocsRequest).docsCall;
      if (!call) return;
      call.status = reply.statusCode;
      call.code ??= (req as FastifyRequest & { larkCode?: number }).larkCode;
    },
  };

  /** An owner or editor as the caller asked for it (user_id_type), the app as its bot's made-up open id. */
  const personId = (g: Gate, id: string, type: string | undefined): string => {
    if (id.startsWith('app:')) return `ou_bot_${id === ANY_APP ? g.who.appId : id.slice(4)}`;
    const u = deps.user(g.who.tenantKey, id);
    if (!u) return id;
    return type === 'union_id' ? u.unionId : type === 'user_id' ? u.userId : u.openId;
  };

  const nameOf =
    (g: Gate, english: boolean): NameOf =>
    (openId) => {
      const u = deps.user(g.who.tenantKey, openId);
      return u ? (english ? u.enName : u.name) : openId;
    };

  // ================================================================ Drive

  const fileView = (g: Gate, o: SimDocObject, userIdType: string | undefined) => {
    const target = o.shortcut ? g.data.object(o.shortcut.targetToken) : undefined;
    return {
      token: o.token,
      name: o.title,
      type: o.type,
      parent_token: o.folder ?? '',
      url: o.shortcut ? urlOf(g.who.tenantKey, o.shortcut.targetType, o.shortcut.targetToken) : urlOf(g.who.tenantKey, o.type, o.token),
      ...(o.shortcut ? { shortcut_info: { target_type: target?.type ?? o.shortcut.targetType, target_token: o.shortcut.targetToken } } : {}),
      created_time: String(o.created),
      modified_time: String(o.edited),
      owner_id: personId(g, o.owner, userIdType),
    };
  };

  /** Drive answers (docs-wiki.md §1): 1061003 not found / 1061007 deleted (404), 1061004 forbidden (403). */
  const driveRefusal = (reply: FastifyReply, access: Access, what: string) => {
    if (access === 'missing') return fail(reply, 404, 1061003, `${what} not found`);
    if (access === 'trashed') return fail(reply, 404, 1061007, `${what} has been deleted`);
    return fail(reply, 403, 1061004, `forbidden: the app or user has no permission on this ${what}`);
  };

  app.get<{ Querystring: Query }>('/open-apis/drive/v1/files', route, async (req, reply) => {
    const q = req.query;
    const g = gate(req, reply, 'drive.files.list', q.folder_token || undefined);
    if (!g) return reply;
    const orderBy = q.order_by ?? 'EditedTime';
    const direction = q.direction ?? 'DESC';
    if (orderBy !== 'EditedTime' && orderBy !== 'CreatedTime') return fail(reply, 400, 1061002, 'params error: order_by must be EditedTime or CreatedTime');
    if (direction !== 'ASC' && direction !== 'DESC') return fail(reply, 400, 1061002, 'params error: direction must be ASC or DESC');
    const sort = (list: SimDocObject[]) => {
      const key = (o: SimDocObject) => (orderBy === 'CreatedTime' ? o.created : o.edited);
      return [...list].sort((a, b) => (direction === 'ASC' ? key(a) - key(b) : key(b) - key(a)));
    };
    const live = (folder: SimDocObject) => (folder.children ?? []).map((t) => g.data.object(t)).filter((o): o is SimDocObject => !!o && !o.trashed);

    if (!q.folder_token) {
      // The caller's root: everything at once, no paging and no shortcuts (corrections.md).
      const files = sort(live(g.data.rootOf(g.p)).filter((o) => o.type !== 'shortcut'));
      return ok(reply, { files: files.map((o) => fileView(g, o, q.user_id_type)), has_more: false });
    }
    const size = intParam(q.page_size, 100);
    if (size === undefined) return fail(reply, 400, 1061002, 'params error: page_size must be an integer');
    if (size < 1 || size > 200) return fail(reply, 400, 1064001, 'page size out of limit (1-200)');
    const offset = decodePageToken(q.page_token);
    if (offset === undefined) return fail(reply, 400, 1061002, 'params error: invalid page_token');
    const folder = g.data.object(q.folder_token);
    if (folder && folder.type !== 'folder') return fail(reply, 400, 1061002, 'params error: folder_token is not a folder');
    const access = g.data.access(folder, g.p);
    if (access !== 'ok' || !folder) return driveRefusal(reply, access, 'folder');
    const all = sort(live(folder));
    const files = all.slice(offset, offset + size);
    const next = offset + files.length;
    const hasMore = next < all.length;
    // A truncation (SimData.truncateListings) answers the page's items with has_more and no token.
    const truncated = ctx.takeTruncation?.('drive.files.list') === true;
    return ok(reply, {
      files: files.map((o) => fileView(g, o, q.user_id_type)),
      has_more: hasMore || truncated,
      ...(hasMore && !truncated ? { next_page_token: encodePageToken(next) } : {}),
    });
  });

  const META_TYPES = new Set(['doc', 'sheet', 'bitable', 'mindnote', 'file', 'wiki', 'docx', 'folder', 'synced_block']);

  app.post<{ Querystring: Query; Body: unknown }>('/open-apis/drive/v1/metas/batch_query', route, async (req, reply) => {
    const g = gate(req, reply, 'drive.metas.batch_query', undefined);
    if (!g) return reply;
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as { request_docs?: unknown; with_url?: unknown };
    const docs = body.request_docs;
    // No parameter-error code is listed for batch_query: Drive's 1061002 (unconfirmed).
    if (!Array.isArray(docs) || docs.length < 1 || docs.length > 200) return fail(reply, 400, 1061002, 'params error: request_docs must hold 1 to 200 documents');
    if (!docs.every((d) => d && typeof d === 'object' && typeof d.doc_token === 'string' && typeof d.doc_type === 'string')) {
      return fail(reply, 400, 1061002, 'params error: each request_docs entry needs doc_token and doc_type strings');
    }
    if (body.with_url !== undefined && typeof body.with_url !== 'boolean') return fail(reply, 400, 1061002, 'params error: with_url must be a boolean');
    const metas: Array<Record<string, unknown>> = [];
    const failed: Array<{ token: string; code: number }> = [];
    for (const { doc_token: token, doc_type: type } of docs as Array<{ doc_token: string; doc_type: string }>) {
      if (!META_TYPES.has(type)) {
        failed.push({ token, code: 970002 });
        continue;
      }
      const node = type === 'wiki' ? g.data.node(token) : undefined;
      const obj = type === 'wiki' ? g.data.objectOfNode(node) : g.data.object(token);
      const access = node ? g.data.nodeAccess(node, g.p) : g.data.access(obj, g.p);
      // Deleted (trash or for good) and type mismatches all answer 970005 (docs-content.md §5.4).
      if (!obj || access === 'missing' || access === 'trashed' || (type !== 'wiki' && obj.type !== type)) {
        failed.push({ token, code: 970005 });
        continue;
      }
      if (access === 'forbidden') {
        failed.push({ token, code: 970003 });
        continue;
      }
      metas.push({
        doc_token: token,
        doc_type: type,
        // A wiki token answers its node's title and its object's times (semantics unconfirmed).
        title: node ? g.data.titleOf(node) : obj.title,
        owner_id: personId(g, obj.owner, req.query.user_id_type),
        create_time: String(obj.created),
        latest_modify_user: personId(g, obj.editedBy, req.query.user_id_type),
        latest_modify_time: String(obj.edited),
        ...(body.with_url === true ? { url: node ? `${host(g.who.tenantKey)}/wiki/${node.token}` : urlOf(g.who.tenantKey, obj.type, obj.token) } : {}),
        sec_label_name: '',
      });
    }
    return ok(reply, { metas, failed_list: failed });
  });

  const sendBytes = (req: FastifyRequest, reply: FastifyReply, bytes: Buffer, ext: FileExt, name: string) => {
    const call = (req as DocsRequest).docsCall;
    if (call) call.code = 0;
    return reply
      .code(200)
      .header('content-type', CONTENT_TYPES[ext])
      .header('content-length', String(bytes.length))
      .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(name)}`)
      .send(bytes);
  };

  app.get<{ Params: { file_token: string } }>('/open-apis/drive/v1/files/:file_token/download', route, async (req, reply) => {
    const g = gate(req, reply, 'drive.files.download', req.params.file_token);
    if (!g) return reply;
    const obj = g.data.object(req.params.file_token);
    const access = g.data.access(obj, g.p);
    if (access !== 'ok' || !obj) return driveRefusal(reply, access, 'file');
    // Documents, sheets and Bases have no bytes to download; they are exported (docs-wiki.md §4).
    // The code for this case is not in the notes: Drive's parameter error (unconfirmed).
    if (!obj.file) return fail(reply, 400, 1061002, `params error: a ${obj.type} cannot be downloaded; create an export task`);
    return sendBytes(req, reply, fileBytes(obj), obj.file.ext, obj.title);
  });

  // ================================================================ export tasks (docs-wiki.md §4)

  const EXTENSIONS: Record<string, string[]> = { doc: ['docx', 'pdf'], docx: ['docx', 'pdf'], sheet: ['xlsx', 'csv'], bitable: ['xlsx', 'csv', 'base'], slides: ['pptx'] };

  app.post<{ Body: unknown }>('/open-apis/drive/v1/export_tasks', route, async (req, reply) => {
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    const g = gate(req, reply, 'drive.export.create', typeof body.token === 'string' ? body.token : undefined);
    if (!g) return reply;
    const { token, type, file_extension: ext, sub_id: subId, only_schema: onlySchema } = body;
    // Export tasks' own error codes are not in the notes: Drive's (unconfirmed).
    if (typeof token !== 'string' || token === '') return fail(reply, 400, 1061002, 'params error: token is required');
    if (typeof type !== 'string' || !(type in EXTENSIONS)) return fail(reply, 400, 1061002, 'params error: type must be doc, docx, sheet, bitable or slides');
    if (typeof ext !== 'string' || !EXTENSIONS[type]!.includes(ext)) return fail(reply, 400, 1061002, `params error: a ${type} exports to ${EXTENSIONS[type]!.join(' or ')}`);
    if (subId !== undefined && typeof subId !== 'string') return fail(reply, 400, 1061002, 'params error: sub_id must be a string');
    if (onlySchema !== undefined && typeof onlySchema !== 'boolean') return fail(reply, 400, 1061002, 'params error: only_schema must be a boolean');
    if (ext === 'csv' && !subId) return fail(reply, 400, 1061002, 'params error: a CSV export needs sub_id (the sheet or table)');
    const obj = g.data.object(token);
    const access = g.data.access(obj, g.p);
    if (access !== 'ok' || !obj) return driveRefusal(reply, access, 'document');
    if (obj.type !== type) return fail(reply, 400, 1061002, `params error: ${token} is a ${obj.type}, not a ${type}`);
    if (subId && !(obj.subIds ?? []).includes(subId)) return fail(reply, 400, 1061002, `params error: no sheet or table ${subId} in ${token}`);
    const task: SimExport = {
      ticket: g.data.mint('node').replace(/^wikcn/, ''),
      tenantKey: g.who.tenantKey,
      principal: g.p,
      token,
      type: type as SimExport['type'],
      ext: ext as SimExport['ext'],
      subId,
      onlySchema: onlySchema === true,
      polls: 0,
      state: 'running',
      error: '',
      title: obj.title,
      revision: obj.revision,
      spec: obj.spec,
      fileToken: undefined,
      fileName: `${obj.title}.${ext}`,
      bytes: undefined,
    };
    g.data.exports.set(task.ticket, task);
    return ok(reply, { ticket: task.ticket });
  });

  app.get<{ Params: { ticket: string }; Querystring: Query }>('/open-apis/drive/v1/export_tasks/:ticket', route, async (req, reply) => {
    const g = gate(req, reply, 'drive.export.get', req.params.ticket);
    if (!g) return reply;
    const task = g.data.exports.get(req.params.ticket);
    if (!task) return fail(reply, 404, 1061003, 'export task not found');
    if (req.query.token !== task.token) return fail(reply, 400, 1061002, 'params error: token must be the exported document token');
    // Polled with the identity that created it (docs-wiki.md §4).
    if (task.principal !== g.p) return fail(reply, 403, 1061004, 'forbidden: poll the export task with the identity that created it');
    task.polls += 1;
    if (task.state === 'running' && task.polls > g.data.exportPolls) {
      const source = g.data.object(task.token);
      const gone = g.data.access(source, task.principal);
      if (g.data.takeExportFailure()) {
        task.state = 'failed';
        task.error = 'export failed: internal error';
      } else if (gone === 'missing' || gone === 'trashed') {
        task.state = 'failed';
        task.error = 'export failed: the document has been deleted';
      } else {
        task.bytes = exportBytes(g.data, task, source!, nameOf(g, false));
        task.fileToken = g.data.mint('file');
        g.data.exportFiles.set(task.fileToken, task.ticket);
        task.state = 'done';
      }
    }
    // job_status: 0 done (docs-wiki.md §4); 1 initialising, 2 processing, 3 failed are the
    // simulator's reading of Lark's other values (unconfirmed).
    const jobStatus = task.state === 'done' ? 0 : task.state === 'failed' ? 3 : task.polls <= 1 ? 1 : 2;
    return ok(reply, {
      result: {
        file_extension: task.ext,
        type: task.type,
        file_name: task.fileName,
        file_token: task.fileToken ?? '',
        file_size: task.bytes?.length ?? 0,
        job_error_msg: task.error,
        job_status: jobStatus,
        ...(task.type === 'bitable' ? { only_schema: task.onlySchema } : {}),
      },
    });
  });

  app.get<{ Params: { file_token: string } }>('/open-apis/drive/v1/export_tasks/file/:file_token/download', route, async (req, reply) => {
    const g = gate(req, reply, 'drive.export.download', req.params.file_token);
    if (!g) return reply;
    const ticket = g.data.exportFiles.get(req.params.file_token);
    const task = ticket ? g.data.exports.get(ticket) : undefined;
    if (!task?.bytes) return fail(reply, 404, 1061003, 'export file not found');
    // Who may download is not stated: the creator, or anyone who may read the source (tolerant).
    if (task.principal !== g.p && g.data.access(g.data.object(task.token), g.p) !== 'ok') {
      return fail(reply, 403, 1061004, 'forbidden: no permission on the exported document');
    }
    return sendBytes(req, reply, task.bytes, task.ext === 'base' ? 'base' : task.ext, task.fileName);
  });

  // ================================================================ wiki (docs-wiki.md §2)

  const nodeView = (g: Gate, n: SimNode) => {
    const obj = g.data.object(n.obj);
    return {
      space_id: n.space,
      node_token: n.token,
      obj_token: n.obj,
      obj_type: g.data.objTypeOf(n),
      parent_node_token: n.parent,
      node_type: n.origin ? 'shortcut' : 'origin',
      origin_node_token: n.origin?.node ?? n.token,
      origin_space_id: n.origin?.space ?? n.space,
      has_child: g.data.childrenOf(n.space, n.token).length > 0,
      title: g.data.titleOf(n),
      obj_create_time: String(obj?.created ?? n.created),
      obj_edit_time: String(obj?.edited ?? n.created),
      node_create_time: String(n.created),
      creator: personId(g, obj?.owner ?? n.creator, undefined),
      owner: personId(g, obj?.owner ?? n.creator, undefined),
      node_creator: personId(g, n.creator, undefined),
      url: `${host(g.who.tenantKey)}/wiki/${n.token}`,
    };
  };

  /** Wiki errors come with HTTP 400 (docs-wiki.md §2). */
  const wikiFail = (reply: FastifyReply, code: number, msg: string) => fail(reply, 400, code, msg);
  const wikiRefusal = (reply: FastifyReply, access: Access, what: string) =>
    access === 'forbidden' ? wikiFail(reply, 131006, `permission denied: no read permission on this ${what}`) : wikiFail(reply, 131005, `${what} not found`);

  app.get<{ Querystring: Query }>('/open-apis/wiki/v2/spaces', route, async (req, reply) => {
    const g = gate(req, reply, 'wiki.spaces.list', undefined);
    if (!g) return reply;
    // Page size: default 20, max 50 (neither is in the notes; larger sizes are cut to 50: tolerant).
    const size = intParam(req.query.page_size, 20);
    if (size === undefined || size < 1) return wikiFail(reply, 131002, 'param error: page_size');
    const offset = decodePageToken(req.query.page_token);
    if (offset === undefined) return wikiFail(reply, 131002, 'param error: page_token');
    const all = [...g.data.spaces.values()].filter((s) => g.data.spaceVisible(s, g.p));
    const items = all.slice(offset, offset + Math.min(size, 50));
    const next = offset + items.length;
    const hasMore = next < all.length;
    const page = {
      items: items.map(({ members: _m, top: _t, ...s }) => s),
      has_more: hasMore,
      ...(hasMore ? { page_token: encodePageToken(next) } : {}),
    };
    return ok(reply, servePage(ctx, 'wiki.spaces.list', page));
  });

  app.get<{ Params: { space_id: string }; Querystring: Query }>('/open-apis/wiki/v2/spaces/:space_id/nodes', route, async (req, reply) => {
    const q = req.query;
    const g = gate(req, reply, 'wiki.nodes.list', q.parent_node_token || req.params.space_id);
    if (!g) return reply;
    // Default page size 20 is not in the notes (unconfirmed); the maximum of 50 is.
    const size = intParam(q.page_size, 20);
    if (size === undefined || size < 1 || size > 50) return wikiFail(reply, 131002, 'param error: page_size must be 1-50');
    const offset = decodePageToken(q.page_token);
    if (offset === undefined) return wikiFail(reply, 131002, 'param error: page_token');
    const space = g.data.space(req.params.space_id);
    if (!space) return wikiFail(reply, 131005, 'space not found');
    if (!g.data.spaceVisible(space, g.p)) return wikiFail(reply, 131006, 'permission denied: the app or user is not a member of this space');
    const parent = q.parent_node_token ? g.data.node(q.parent_node_token) : undefined;
    if (q.parent_node_token) {
      const access = parent && parent.space === space.space_id ? g.data.nodeAccess(parent, g.p) : 'missing';
      if (access !== 'ok') return wikiRefusal(reply, access, 'node');
    }
    const all = g.data.childrenOf(space.space_id, parent?.token ?? '');
    const slice = all.slice(offset, offset + size);
    const next = offset + slice.length;
    const hasMore = next < all.length;
    // Permission filtering after paging: pages can be short, even empty, with has_more true (docs-wiki.md §2.2).
    const items = slice
      .map((t) => g.data.node(t)!)
      .filter((n) => g.data.nodeAccess(n, g.p) === 'ok')
      .map((n) => nodeView(g, n));
    const page = { items, has_more: hasMore, ...(hasMore ? { page_token: encodePageToken(next) } : {}) };
    return ok(reply, servePage(ctx, 'wiki.nodes.list', page));
  });

  const OBJ_TYPES = new Set(['doc', 'docx', 'sheet', 'mindnote', 'bitable', 'file', 'slides', 'wiki']);

  // Resolves docs-store nodes; other tokens go to `otherNode` (the Base module's nodes, answered as before).
  app.get<{ Querystring: Query }>('/open-apis/wiki/v2/spaces/get_node', route, async (req, reply) => {
    const token = req.query.token ?? '';
    const g = gate(req, reply, 'wiki.get_node', token || undefined);
    if (!g) return reply;
    const objType = req.query.obj_type ?? 'wiki';
    if (!token) return wikiFail(reply, 131002, 'param error: token is required');
    if (!OBJ_TYPES.has(objType)) return wikiFail(reply, 131002, 'param error: obj_type');
    let node: SimNode | undefined;
    if (objType === 'wiki') node = g.data.node(token);
    else {
      const obj = g.data.object(token);
      node = obj?.node && obj.type === objType ? g.data.node(obj.node) : undefined;
    }
    if (node) {
      const access = g.data.nodeAccess(node, g.p);
      if (access !== 'ok') return wikiRefusal(reply, access, 'node');
      return ok(reply, { node: nodeView(g, node) });
    }
    const other = deps.otherNode?.(g.who.tenantKey, token, objType);
    if (other) return ok(reply, { node: other });
    return wikiFail(reply, 131005, 'not found');
  });

  // ================================================================ content (docs-content.md §5.1–5.3)

  /** A docx the caller may read, or the family's refusal. */
  const docxFor = (g: Gate, reply: FastifyReply, id: string): SimDocObject | undefined => {
    const obj = g.data.object(id);
    const access = obj?.type === 'docx' ? g.data.access(obj, g.p) : 'missing';
    if (access === 'ok') return obj;
    if (access === 'missing') void fail(reply, 404, 1770002, 'not found');
    // 1770003's HTTP status is not stated (unconfirmed: 404, like not found).
    else if (access === 'trashed') void fail(reply, 404, 1770003, 'resource deleted');
    // The docx family's permission code is not in the notes; 1770032 "forbidden" is what Lark's
    // docx APIs are seen answering elsewhere (unconfirmed), with HTTP 403.
    else void fail(reply, 403, 1770032, 'forbidden: add the app to the document (or share it with the user)');
    return undefined;
  };

  app.get<{ Querystring: Query }>('/open-apis/docs/v1/content', route, async (req, reply) => {
    const q = req.query;
    const g = gate(req, reply, 'docs.content', q.doc_token || undefined);
    if (!g) return reply;
    // HTTP statuses of 2889904 / 2889914 / 2889925 are not stated: 400 / 404 / 400 (unconfirmed).
    if (!q.doc_token) return fail(reply, 400, 2889904, 'invalid param: doc_token is required');
    // doc_type and content_type have a single value each; absent is taken as that value (tolerant).
    if ((q.doc_type ?? 'docx') !== 'docx') return fail(reply, 400, 2889904, 'invalid param: doc_type must be docx');
    if ((q.content_type ?? 'markdown') !== 'markdown') return fail(reply, 400, 2889904, 'invalid param: content_type must be markdown');
    const lang = q.lang ?? 'zh';
    if (!['zh', 'en', 'ja'].includes(lang)) return fail(reply, 400, 2889904, 'invalid param: lang must be zh, en or ja');
    const obj = g.data.object(q.doc_token);
    // Only new-style docx: a legacy doc (or a sheet, a Base...) is not a docx token: not found.
    const access = obj?.type === 'docx' ? g.data.access(obj, g.p) : 'missing';
    if (access === 'missing') return fail(reply, 404, 2889914, 'doc token not found');
    if (access === 'trashed') return fail(reply, 403, 2889906, 'docs deleted');
    if (access === 'forbidden') return fail(reply, 403, 2889902, 'no permission: add the app as a document app, or share the document with the user');
    const r = g.data.render(obj!, obj!.spec!);
    const content = markdownOf(r, lang, nameOf(g, lang === 'en'));
    if (Buffer.byteLength(content, 'utf8') > 10 * 1024 * 1024) return fail(reply, 400, 2889925, 'content size exceeds the 10 MB limit');
    return ok(reply, { content });
  });

  app.get<{ Params: { document_id: string } }>('/open-apis/docx/v1/documents/:document_id', route, async (req, reply) => {
    const g = gate(req, reply, 'docx.document.get', req.params.document_id);
    if (!g) return reply;
    const obj = docxFor(g, reply, req.params.document_id);
    if (!obj) return reply;
    return ok(reply, {
      document: {
        document_id: obj.token,
        revision_id: obj.revision,
        title: obj.title,
        // Field list made up from the Go SDK's model names (unconfirmed).
        display_setting: { show_authors: true, show_create_time: false, show_pv: false, show_uv: false, show_like_count: false, show_comment_count: false },
      },
    });
  });

  app.get<{ Params: { document_id: string }; Querystring: Query }>('/open-apis/docx/v1/documents/:document_id/raw_content', route, async (req, reply) => {
    const g = gate(req, reply, 'docx.raw_content', req.params.document_id);
    if (!g) return reply;
    const lang = intParam(req.query.lang, 0);
    if (lang === undefined || lang < 0 || lang > 2) return fail(reply, 400, 1770001, 'invalid param: lang must be 0, 1 or 2');
    const obj = docxFor(g, reply, req.params.document_id);
    if (!obj) return reply;
    // lang 1 = English names; 2 is not supported and falls back to the default (docs-content.md §5.2).
    const r = g.data.render(obj, obj.spec!);
    return ok(reply, { content: rawOf(r, String(lang === 1 ? 1 : 0), nameOf(g, lang === 1)) });
  });

  /** The revision a blocks call asks for (document_revision_id, -1 = latest), or the refusal. */
  const revisionFor = (g: Gate, reply: FastifyReply, obj: SimDocObject, raw: string | undefined): Rendered | undefined => {
    const rev = intParam(raw, -1);
    if (rev === undefined || rev < -1 || rev === 0 || rev > obj.revision) {
      void fail(reply, 400, 1770001, 'invalid param: document_revision_id');
      return undefined;
    }
    if (rev !== -1 && rev !== obj.revision) {
      if (obj.revision - rev > 1000) {
        void fail(reply, 400, 1770021, 'revision too old: more than 1000 revisions behind the latest');
        return undefined;
      }
      // Older revisions need edit permission; the simulator grants edit to the owner only.
      if (obj.owner !== g.p && !(obj.owner === ANY_APP && g.p.startsWith('app:'))) {
        void fail(reply, 403, 1770032, 'forbidden: reading an older revision needs edit permission');
        return undefined;
      }
    }
    const spec = g.data.specOf(obj, rev === -1 ? undefined : rev);
    if (!spec) {
      void fail(reply, 400, 1770021, 'revision not available');
      return undefined;
    }
    return g.data.render(obj, spec);
  };

  const blockPage = (reply: FastifyReply, q: Query): { size: number; offset: number } | undefined => {
    const size = intParam(q.page_size, 500);
    if (size === undefined || size < 1 || size > 500) {
      void fail(reply, 400, 1770001, 'invalid param: page_size must be 1-500');
      return undefined;
    }
    const offset = decodePageToken(q.page_token);
    if (offset === undefined) {
      void fail(reply, 400, 1770022, 'invalid page token');
      return undefined;
    }
    return { size, offset };
  };

  const paged = (all: SimBlock[], offset: number, size: number) => {
    const items = all.slice(offset, offset + size);
    const next = offset + items.length;
    const hasMore = next < all.length;
    return { items, has_more: hasMore, ...(hasMore ? { page_token: encodePageToken(next) } : {}) };
  };

  app.get<{ Params: { document_id: string }; Querystring: Query }>('/open-apis/docx/v1/documents/:document_id/blocks', route, async (req, reply) => {
    const g = gate(req, reply, 'docx.blocks', req.params.document_id);
    if (!g) return reply;
    const paging = blockPage(reply, req.query);
    if (!paging) return reply;
    const obj = docxFor(g, reply, req.params.document_id);
    if (!obj) return reply;
    const r = revisionFor(g, reply, obj, req.query.document_revision_id);
    if (!r) return reply;
    return ok(reply, servePage(ctx, 'docx.blocks', paged(r.blocks, paging.offset, paging.size)));
  });

  type BlockRoute = { Params: { document_id: string; block_id: string }; Querystring: Query };

  app.get<BlockRoute>('/open-apis/docx/v1/documents/:document_id/blocks/:block_id', route, async (req, reply) => {
    const g = gate(req, reply, 'docx.block.get', req.params.document_id);
    if (!g) return reply;
    const obj = docxFor(g, reply, req.params.document_id);
    if (!obj) return reply;
    const r = revisionFor(g, reply, obj, req.query.document_revision_id);
    if (!r) return reply;
    const i = r.index.get(req.params.block_id);
    if (i === undefined) return fail(reply, 404, 1770002, 'block not found');
    return ok(reply, { block: r.blocks[i] });
  });

  app.get<BlockRoute>('/open-apis/docx/v1/documents/:document_id/blocks/:block_id/children', route, async (req, reply) => {
    const g = gate(req, reply, 'docx.block.children', req.params.document_id);
    if (!g) return reply;
    const paging = blockPage(reply, req.query);
    if (!paging) return reply;
    const obj = docxFor(g, reply, req.params.document_id);
    if (!obj) return reply;
    const r = revisionFor(g, reply, obj, req.query.document_revision_id);
    if (!r) return reply;
    const i = r.index.get(req.params.block_id);
    if (i === undefined) return fail(reply, 404, 1770002, 'block not found');
    const children = (r.blocks[i]!.children ?? []).map((id) => r.blocks[r.index.get(id) ?? -1]).filter((b): b is SimBlock => !!b);
    return ok(reply, paged(children, paging.offset, paging.size));
  });
}

// ================================================================ bytes

/** An uploaded file's bytes: a PDF, Word or Excel file of made-up prose. */
export function fileBytes(obj: SimDocObject): Buffer {
  const f = obj.file!;
  const lines = fillerLines(f.seed, f.lines);
  if (f.ext === 'pdf') return pdfBytes([obj.title, ...lines]);
  if (f.ext === 'docx') return docxBytes(obj.title, lines);
  return xlsxBytes('Sheet1', [['#', 'Note'], ...lines.map((l, i) => [String(i + 1), l])]);
}

/** Rows of a sheet or Base table (made up, deterministic per object, sub id and revision). */
function tableRows(obj: SimDocObject, subId: string | undefined, onlySchema: boolean, revision: number): string[][] {
  const header = obj.type === 'bitable' ? ['Name', 'Status', 'Owner', 'Notes'] : ['Item', 'Amount', 'Quarter', 'Comment'];
  if (onlySchema) return [header];
  const lines = fillerLines(`${obj.token}:${subId ?? obj.subIds?.[0] ?? ''}:${revision}`, 12, 6);
  return [header, ...lines.map((l, i) => (obj.type === 'bitable' ? [`Record ${i + 1}`, ['Todo', 'Doing', 'Done'][i % 3]!, `User ${i + 1}`, l] : [`Line ${i + 1}`, String((i + 1) * 125), `Q${(i % 4) + 1}`, l]))];
}

function exportBytes(data: DocsTenant, task: SimExport, obj: SimDocObject, names: NameOf): Buffer {
  if (task.type === 'doc' || task.type === 'docx') {
    const r = data.render(obj, task.spec!);
    const lines = rawOf(r, '0', names).trimEnd().split('\n').slice(1);
    return task.ext === 'pdf' ? pdfBytes([task.title, ...lines]) : docxBytes(task.title, lines);
  }
  const rows = tableRows(obj, task.subId, task.onlySchema, task.revision);
  if (task.ext === 'csv') return csvBytes(rows);
  if (task.ext === 'base') return Buffer.from(JSON.stringify({ name: task.title, tables: (obj.subIds ?? []).map((id) => ({ table_id: id, rows })) }));
  return xlsxBytes(task.title, rows);
}
