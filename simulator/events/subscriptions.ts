/**
 * Who asked for which change events (../shared/lark/change-events.md §2.1, §3):
 * - approval: `POST /approval/v4/approvals/:approval_code/subscribe`, per app and approval code;
 *   for a store app the call is made with a tenant's token, so it is kept per (app, tenant, code)
 *   (the notes' inference);
 * - Drive files and Bases: `POST /drive/v1/files/:file_token/subscribe?file_type=…`, per app,
 *   tenant and file, by the app itself (a tenant token) and/or by users (their user tokens).
 * Contact events need no call: they follow the app's contact scope (contact.ts).
 */

/** The subscriber of a file subscription: the app itself, or a user (open_id) through a user token. */
export const APP_SUBSCRIBER = 'app';

export interface FileSubscription {
  fileToken: string;
  fileType: string;
  /** APP_SUBSCRIBER and/or open_ids. */
  subscribers: Set<string>;
}

const key = (...parts: string[]) => parts.join('\u0000');

export class SubscriptionBook {
  private readonly approvals = new Set<string>();
  private readonly files = new Map<string, FileSubscription>();
  /** tenant -> file token -> app ids subscribed (the lookup a data change makes). */
  private readonly fileIndex = new Map<string, Map<string, Set<string>>>();
  /** tenant -> approval code -> app ids subscribed. */
  private readonly approvalIndex = new Map<string, Map<string, Set<string>>>();

  // ---------------------------------------------------------------- approval

  /** False when it already existed (the API then answers 1390007). */
  subscribeApproval(appId: string, tenantKey: string, approvalCode: string): boolean {
    const k = key(appId, tenantKey, approvalCode);
    if (this.approvals.has(k)) return false;
    this.approvals.add(k);
    indexAdd(this.approvalIndex, tenantKey, approvalCode, appId);
    return true;
  }

  /** False when there was none (the API then answers 1390007 as well). */
  unsubscribeApproval(appId: string, tenantKey: string, approvalCode: string): boolean {
    if (!this.approvals.delete(key(appId, tenantKey, approvalCode))) return false;
    indexDelete(this.approvalIndex, tenantKey, approvalCode, appId);
    return true;
  }

  hasApproval(appId: string, tenantKey: string, approvalCode: string): boolean {
    return this.approvals.has(key(appId, tenantKey, approvalCode));
  }

  /** Apps subscribed to an approval code of a tenant. */
  approvalApps(tenantKey: string, approvalCode: string): string[] {
    return [...(this.approvalIndex.get(tenantKey)?.get(approvalCode) ?? [])];
  }

  // ---------------------------------------------------------------- files

  subscribeFile(appId: string, tenantKey: string, fileToken: string, fileType: string, subscriber = APP_SUBSCRIBER): void {
    const k = key(appId, tenantKey, fileToken);
    let sub = this.files.get(k);
    if (!sub) {
      sub = { fileToken, fileType, subscribers: new Set() };
      this.files.set(k, sub);
      indexAdd(this.fileIndex, tenantKey, fileToken, appId);
    }
    sub.subscribers.add(subscriber);
  }

  /** Cancels every event of the file for this subscriber (delete_subscribe); false when there was none. */
  unsubscribeFile(appId: string, tenantKey: string, fileToken: string, subscriber = APP_SUBSCRIBER): boolean {
    const k = key(appId, tenantKey, fileToken);
    const sub = this.files.get(k);
    if (!sub?.subscribers.delete(subscriber)) return false;
    if (sub.subscribers.size === 0) {
      this.files.delete(k);
      indexDelete(this.fileIndex, tenantKey, fileToken, appId);
    }
    return true;
  }

  file(appId: string, tenantKey: string, fileToken: string): FileSubscription | undefined {
    return this.files.get(key(appId, tenantKey, fileToken));
  }

  /** Apps with a subscription to a file of a tenant. */
  fileApps(tenantKey: string, fileToken: string): string[] {
    return [...(this.fileIndex.get(tenantKey)?.get(fileToken) ?? [])];
  }

  /**
   * Drops every subscription an app holds in a tenant: an uninstall ends them with the install
   * (the notes do not say; unconfirmed, taken as Lark ending every grant the install gave).
   */
  dropTenant(appId: string, tenantKey: string): void {
    for (const [code, apps] of this.approvalIndex.get(tenantKey) ?? []) if (apps.has(appId)) this.unsubscribeApproval(appId, tenantKey, code);
    for (const [token, apps] of this.fileIndex.get(tenantKey) ?? []) {
      if (!apps.has(appId)) continue;
      this.files.delete(key(appId, tenantKey, token));
      indexDelete(this.fileIndex, tenantKey, token, appId);
    }
  }

  /** Forgets every subscription (tests). */
  clear(): void {
    this.approvals.clear();
    this.files.clear();
    this.fileIndex.clear();
    this.approvalIndex.clear();
  }
}

function indexAdd(index: Map<string, Map<string, Set<string>>>, tenantKey: string, item: string, appId: string): void {
  let byItem = index.get(tenantKey);
  if (!byItem) index.set(tenantKey, (byItem = new Map()));
  let apps = byItem.get(item);
  if (!apps) byItem.set(item, (apps = new Set()));
  apps.add(appId);
}

function indexDelete(index: Map<string, Map<string, Set<string>>>, tenantKey: string, item: string, appId: string): void {
  const apps = index.get(tenantKey)?.get(item);
  apps?.delete(appId);
  if (apps?.size === 0) index.get(tenantKey)?.delete(item);
}
