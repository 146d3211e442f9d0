import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TenantIdentity } from '../lark-simulator.js';
import type { ApprovalTenant } from '../data/approval.js';
import type { BitableTenant } from '../data/bitable/seed.js';
import { appPrincipal, type DocsTenant } from '../data/docs/store.js';
import { admitCall, larkReply, ok, type DataApiContext } from '../data/support.js';
import { APP_SUBSCRIBER } from './subscriptions.js';

/**
 * The subscribe calls that gate change events (../shared/lark/change-events.md §2.1, §3, and the
 * pages they cite):
 *
 * | call | token | limit | errors |
 * |---|---|---|---|
 * | `POST /approval/v4/approvals/:approval_code/subscribe` | tenant | 100/min | 1390002 unknown code, 1390007 already subscribed (all HTTP 400) |
 * | `POST /approval/v4/approvals/:approval_code/unsubscribe` | tenant | 100/min | 1390002, 1390007 when not subscribed |
 * | `POST /drive/v1/files/:file_token/subscribe?file_type=` | tenant or user | 50/s, 1000/min | 1069602 (400) bad file_type / event_type, 1069603 (403) no manage right, 1069604 (400) not found |
 * | `GET /drive/v1/files/:file_token/get_subscribe?file_type=` | tenant or user | 10/min | as subscribe; `data.is_subscribe` |
 * | `DELETE /drive/v1/files/:file_token/delete_subscribe?file_type=` | tenant or user | 10/min | as subscribe, 1069605 (400) not subscribed |
 *
 * 1390001, 1395001 and 1069601 are service faults: inject them with `sim.injectFault({ path })`.
 * Subscribing a file twice succeeds (the pages name no error for it: unconfirmed). A wiki-hosted
 * document is subscribed by its object token; node tokens are not found (unconfirmed).
 */

export interface EventRouteDeps {
  approval: (tenantKey: string) => ApprovalTenant;
  bitable: (tenantKey: string) => BitableTenant;
  docs: (tenantKey: string) => DocsTenant;
}

const FILE_TYPES = new Set(['doc', 'docx', 'sheet', 'bitable', 'file', 'folder', 'slides']);
const FOLDER_EVENT = 'file.created_in_folder_v1';

type ApprovalRoute = { Params: { approval_code: string } };
type FileRoute = { Params: { file_token: string }; Querystring: Record<string, string | undefined> };

export function registerEventRoutes(app: FastifyInstance, ctx: DataApiContext, deps: EventRouteDeps): void {
  const subs = ctx.sim.events.subscriptions;

  // ---------------------------------------------------------------- approval (tenant token only)

  const approvalCall = (api: string, req: FastifyRequest<ApprovalRoute>, reply: FastifyReply): TenantIdentity | undefined => {
    const who = ctx.sim.authorizeTenant(req, reply);
    if (!who) return undefined;
    if (!ctx.limiter.admit(reply, `${who.appId}:${who.tenantKey}:${api}`, { perMinute: 100 })) return undefined;
    if (!deps.approval(who.tenantKey).isKnownDefinition(req.params.approval_code)) {
      void larkReply(reply, 400, { code: 1390002, msg: 'approval code not found' });
      return undefined;
    }
    return who;
  };

  app.post<ApprovalRoute>('/open-apis/approval/v4/approvals/:approval_code/subscribe', async (req, reply) => {
    const who = approvalCall('approval.subscribe', req, reply);
    if (!who) return reply;
    if (!subs.subscribeApproval(who.appId, who.tenantKey, req.params.approval_code)) {
      return larkReply(reply, 400, { code: 1390007, msg: 'subscription existed' });
    }
    return ok(reply, {});
  });

  app.post<ApprovalRoute>('/open-apis/approval/v4/approvals/:approval_code/unsubscribe', async (req, reply) => {
    const who = approvalCall('approval.unsubscribe', req, reply);
    if (!who) return reply;
    // "Already subscribed or already unsubscribed": the same code both ways (documented).
    if (!subs.unsubscribeApproval(who.appId, who.tenantKey, req.params.approval_code)) {
      return larkReply(reply, 400, { code: 1390007, msg: 'subscription existed' });
    }
    return ok(reply, {});
  });

  // ---------------------------------------------------------------- Drive files (tenant or user token)

  /** The checks every file call shares: token, limit, file_type, the file, the manage right. */
  const fileCall = (api: string, limit: { perSecond?: number; perMinute?: number }, req: FastifyRequest<FileRoute>, reply: FastifyReply) => {
    const who = admitCall(ctx, req, reply, api, limit);
    if (!who) return undefined;
    const fail = (status: number, code: number, msg: string) => {
      void larkReply(reply, status, { code, msg });
      return undefined;
    };
    const fileType = req.query.file_type ?? '';
    if (!FILE_TYPES.has(fileType)) return fail(400, 1069602, 'param error: file_type must be one of doc, docx, sheet, bitable, file, folder, slides');
    // Other file types take no event_type; one given anyway is ignored (unconfirmed).
    if (fileType === 'folder' && req.query.event_type !== FOLDER_EVENT) return fail(400, 1069602, `param error: event_type must be ${FOLDER_EVENT} for a folder`);
    const token = req.params.file_token;
    const subscriber = who.user ? who.user.openId : APP_SUBSCRIBER;
    const managerId = who.user ? who.user.openId : who.appId;
    if (fileType === 'bitable') {
      const bitable = deps.bitable(who.tenantKey);
      if (bitable.bases.has(token)) {
        if (!bitable.canManage(token, managerId)) return fail(403, 1069603, 'forbidden: no manage permission on the document');
        return { who, token, fileType, subscriber };
      }
    }
    const docs = deps.docs(who.tenantKey);
    const obj = docs.object(token);
    // A type other than the object's is taken as not found (unconfirmed).
    if (!obj || obj.type !== fileType) return fail(400, 1069604, 'document not found');
    const p = who.user ? who.user.openId : appPrincipal(who.appId);
    const access = docs.access(obj, p);
    if (access === 'missing' || access === 'trashed') return fail(400, 1069604, 'document not found');
    if (!docs.canManage(obj, p)) return fail(403, 1069603, 'forbidden: no manage permission on the document');
    return { who, token, fileType, subscriber };
  };

  const base = '/open-apis/drive/v1/files/:file_token';

  app.post<FileRoute>(`${base}/subscribe`, async (req, reply) => {
    const call = fileCall('drive.files.subscribe', { perSecond: 50, perMinute: 1000 }, req, reply);
    if (!call) return reply;
    subs.subscribeFile(call.who.appId, call.who.tenantKey, call.token, call.fileType, call.subscriber);
    return ok(reply, {});
  });

  app.get<FileRoute>(`${base}/get_subscribe`, async (req, reply) => {
    const call = fileCall('drive.files.get_subscribe', { perMinute: 10 }, req, reply);
    if (!call) return reply;
    const subscribed = subs.file(call.who.appId, call.who.tenantKey, call.token)?.subscribers.has(call.subscriber) === true;
    if (!subscribed && ctx.sim.events.options.getSubscribeWhenNone === '1069605') {
      return larkReply(reply, 400, { code: 1069605, msg: 'Unsubscribe' });
    }
    return ok(reply, { is_subscribe: subscribed });
  });

  app.delete<FileRoute>(`${base}/delete_subscribe`, async (req, reply) => {
    const call = fileCall('drive.files.delete_subscribe', { perMinute: 10 }, req, reply);
    if (!call) return reply;
    if (!subs.unsubscribeFile(call.who.appId, call.who.tenantKey, call.token, call.subscriber)) {
      return larkReply(reply, 400, { code: 1069605, msg: 'Unsubscribe' });
    }
    return ok(reply, {});
  });
}
