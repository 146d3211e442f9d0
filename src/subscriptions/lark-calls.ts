import { WIKI_GET_NODE_LIMIT } from '../connectors/base/index.js';
import { perMinute, type RateLimit } from '../sync/pacer.js';
import type { SyncLarkClient } from '../sync/sync-lark-client.js';
import { SliceDeferredError, SyncError } from '../sync/sync-errors.js';

/**
 * The subscribe calls (change-events.md §2.1, §3), with their frequency limits, drawn from the same
 * per-(app, tenant, API) buckets of the Postgres pacer as every other call:
 * - approval subscribe / unsubscribe: 100/min;
 * - Drive file subscribe: 1000/min and 50/s; delete_subscribe: 10/min;
 * - wiki get_node (a Base given by its wiki URL): the tier the Base module declares (one budget).
 */
export const SUBSCRIPTION_LIMITS = {
  'approval.subscribe': perMinute(100, 5),
  'approval.unsubscribe': perMinute(100, 5),
  'drive.files.subscribe': perMinute(1000, 20),
  'drive.files.delete_subscribe': perMinute(10, 1),
  'wiki.get_node': WIKI_GET_NODE_LIMIT,
} satisfies Record<string, RateLimit>;

export interface SubscriptionObject {
  object_token: string;
  object_type: string;
}

export async function subscribe(lark: SyncLarkClient, o: SubscriptionObject): Promise<void> {
  if (o.object_type === 'approval') {
    await lark.call('approval.subscribe', { method: 'POST', path: `/open-apis/approval/v4/approvals/${encodeURIComponent(o.object_token)}/subscribe` });
    return;
  }
  await lark.call('drive.files.subscribe', {
    method: 'POST',
    path: `/open-apis/drive/v1/files/${encodeURIComponent(o.object_token)}/subscribe`,
    query: { file_type: o.object_type },
  });
}

export async function unsubscribe(lark: SyncLarkClient, o: SubscriptionObject): Promise<void> {
  if (o.object_type === 'approval') {
    await lark.call('approval.unsubscribe', { method: 'POST', path: `/open-apis/approval/v4/approvals/${encodeURIComponent(o.object_token)}/unsubscribe` });
    return;
  }
  // Cancels every event of the file for this app (there is no per-event undo).
  await lark.call('drive.files.delete_subscribe', {
    method: 'DELETE',
    path: `/open-apis/drive/v1/files/${encodeURIComponent(o.object_token)}/delete_subscribe`,
    query: { file_type: o.object_type },
  });
}

/** A Base's app_token from its wiki node (wiki get_node); throws a SyncError when the page is not a Base. */
export async function resolveWikiBase(lark: SyncLarkClient, nodeToken: string): Promise<string> {
  const data = await lark.call<{ node?: { obj_type?: string; obj_token?: string } }>('wiki.get_node', {
    method: 'GET',
    path: '/open-apis/wiki/v2/spaces/get_node',
    query: { token: nodeToken, obj_type: 'wiki' },
  });
  if (data.node?.obj_type !== 'bitable' || !data.node.obj_token) {
    const what = data.node?.obj_type ? `the wiki page is a ${data.node.obj_type}` : 'Lark returned no node';
    throw new SyncError('invalid_config', `wiki node ${nodeToken}: ${what}, not a Base`);
  }
  return data.node.obj_token;
}

export type Outcome =
  | { kind: 'ok' }
  /** Lark will not until someone acts: a warning saying what to do. */
  | { kind: 'refused'; code: number | null; message: string }
  /** Worth retrying later (`at`, when Lark said when). */
  | { kind: 'failed'; code: number | null; message: string; at?: Date };

/** Lark's answers that mean "already so": subscribe twice (1390007) / unsubscribe what is not (1390007, 1069605). */
const ALREADY = { subscribe: new Set([1390007]), unsubscribe: new Set([1390007, 1069605, 1069604, 1390002]) };
/**
 * Service faults to retry: 1395001 and 1069601 (documented), and 1390001 "param invalid", which the
 * approval notes list without saying whether it is the caller's fault; a call with no parameters
 * can hardly be, so it is retried like a fault (unconfirmed).
 */
const RETRY_CODES = new Set([1395001, 1069601, 1390001]);

const what = (o: SubscriptionObject) => (o.object_type === 'approval' ? 'approval definition' : o.object_type === 'bitable' ? 'Base' : 'document');

/** What a call's failure means for the subscription, with what to do about a refusal. */
export function outcomeOf(err: unknown, op: 'subscribe' | 'unsubscribe', o: SubscriptionObject): Outcome {
  if (err instanceof SliceDeferredError) return { kind: 'failed', code: null, message: 'Lark asked to wait (throttled)', at: err.resumeAt };
  if (!(err instanceof SyncError)) return { kind: 'failed', code: null, message: err instanceof Error ? err.message : String(err) };
  const code = err.larkCode ?? null;
  if (code !== null && ALREADY[op].has(code)) return { kind: 'ok' };
  if (code !== null && RETRY_CODES.has(code)) return { kind: 'failed', code, message: err.message };
  const thing = what(o);
  if (code === 1069603) {
    return {
      kind: 'refused',
      code,
      message:
        `the app needs manage rights on this ${thing} to receive its change events: open it, "…" → More → Add document app ` +
        `(添加文档应用), and add the app with manage permission (可管理); Lark also refuses while the company has not ` +
        `enabled document access records (code 1069603)`,
    };
  }
  if (code === 1069604 || code === 1390002) {
    return { kind: 'refused', code, message: `Lark finds no ${thing} ${o.object_token} (code ${code}): check the connector's settings` };
  }
  if (err.errorClass === 'permission_denied') {
    return {
      kind: 'refused',
      code,
      message:
        `Lark refused the subscribe call (${err.message}): in the developer console enable ` +
        (o.object_type === 'approval' ? 'approval:approval or approval:definition' : 'docs:event:subscribe or drive:drive (for both app and user identity)') +
        ' and the change events, then publish the app version',
    };
  }
  if (err.errorClass === 'user_authorization_required' || err.errorClass === 'invalid_config' || err.errorClass === 'not_found') {
    return { kind: 'refused', code, message: err.message };
  }
  return { kind: 'failed', code, message: err.message };
}
