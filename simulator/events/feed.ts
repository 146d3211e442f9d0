import type { LarkSimulator } from '../lark-simulator.js';
import type { ApprovalEventStatus, SimCc, SimInstance, SimTask, TaskEventStatus } from '../data/approval.js';
import type { ContactChange, ContactDirectory, SimUser } from '../data/contact.js';
import type { SimBitablePerson, SimTable, TableChangeSet } from '../data/bitable/table.js';
import { appPrincipal, type DocChange, type DocsTenant, type SimDocObject } from '../data/docs/store.js';
import { APP_SUBSCRIBER, type FileSubscription } from './subscriptions.js';
import {
  approvalCcEvent,
  approvalInstanceEvent,
  approvalTaskEvent,
  departmentObject,
  fieldActions,
  idsOf,
  recordActions,
  scopeDepartment,
  userObject,
  type UserIds,
} from './payloads.js';

/**
 * Turns data changes into change events for the apps that receive them
 * (../shared/lark/change-events.md):
 * - contact: every app installed in the tenant with the changed user or department inside its
 *   contact scope (no subscribe call);
 * - approval: apps that subscribed the instance's approval code for the tenant get
 *   `approval_instance`, `approval_task` and `approval_cc`, in order per instance (held until the
 *   previous event of the instance is acknowledged; one order across the three types, unconfirmed);
 * - Base: apps with a file subscription on the Base: record and field events plus
 *   `drive.file.edit_v1`;
 * - Docs: apps with a file subscription on the object: `drive.file.edit_v1` to owners and
 *   managers, title/trash/delete events to owners only (`ownerOnlyFileEvents`).
 * Apps without a request URL receive nothing.
 */
export interface FeedData {
  contact(tenantKey: string): ContactDirectory;
}

export class ChangeFeed {
  constructor(
    private readonly sim: LarkSimulator,
    private readonly data: FeedData,
  ) {}

  private get events() {
    return this.sim.events;
  }

  /** Apps that can receive the tenant's events: installed there, with a request URL. */
  private receiving(tenantKey: string, appIds?: Iterable<string>): Array<{ appId: string; custom: boolean }> {
    const apps = appIds ? [...appIds].map((id) => this.sim.findApp(id)).filter((a) => a !== undefined) : this.sim.listApps();
    return apps.filter((a) => a.eventUrl && this.sim.isInstalled(a.appId, tenantKey)).map((a) => ({ appId: a.appId, custom: a.kind === 'custom' }));
  }

  // ---------------------------------------------------------------- contact

  contact(tenantKey: string, dir: ContactDirectory, change: ContactChange): void {
    if (change.kind === 'scope.updated') {
      const [app] = this.receiving(tenantKey, [change.appId]);
      if (!app) return;
      const entries = (e: { departments: string[]; users: string[] }) => ({
        departments: e.departments.map((d) => scopeDepartment(dir, d)),
        users: e.users.flatMap((id) => {
          const u = dir.users.get(id);
          return u ? [userObject(u, app.custom, dir.employeeNumberScope)] : [];
        }),
        user_groups: [],
      });
      this.events.emitV2(app.appId, tenantKey, 'contact.scope.updated_v3', { added: entries(change.added), removed: entries(change.removed) });
      return;
    }
    for (const app of this.receiving(tenantKey)) {
      const view = (u: Partial<SimUser>) => userObject(u, app.custom, dir.employeeNumberScope);
      switch (change.kind) {
        case 'user.created':
          if (dir.userInScope(app.appId, change.user)) this.events.emitV2(app.appId, tenantKey, 'contact.user.created_v3', { object: view(change.user) });
          break;
        case 'user.updated':
          if (dir.userInScope(app.appId, change.user)) {
            this.events.emitV2(app.appId, tenantKey, 'contact.user.updated_v3', { object: view(change.user), old_object: view(change.old) });
          }
          break;
        case 'user.deleted':
          if (dir.userInScope(app.appId, change.user)) {
            this.events.emitV2(app.appId, tenantKey, 'contact.user.deleted_v3', {
              object: view(change.user),
              old_object: { department_ids: [...change.user.department_ids], open_id: change.user.open_id },
            });
          }
          break;
        case 'department.created':
          if (dir.departmentInScope(app.appId, change.department.open_department_id)) {
            this.events.emitV2(app.appId, tenantKey, 'contact.department.created_v3', { object: departmentObject(change.department) });
          }
          break;
        case 'department.updated':
          // old_object: the changed fields only, as for users (the page types a full object:
          // unconfirmed; receivers must not rely on it being complete either way).
          if (dir.departmentInScope(app.appId, change.department.open_department_id)) {
            this.events.emitV2(app.appId, tenantKey, 'contact.department.updated_v3', {
              object: departmentObject(change.department),
              old_object: departmentObject(change.old),
            });
          }
          break;
        case 'department.deleted':
          if (dir.departmentInScope(app.appId, change.department.open_department_id)) {
            this.events.emitV2(app.appId, tenantKey, 'contact.department.deleted_v3', {
              object: departmentObject(change.department),
              old_object: { status: { is_deleted: false }, open_department_id: change.department.open_department_id },
            });
          }
          break;
      }
    }
  }

  // ---------------------------------------------------------------- approval

  wantsApproval(tenantKey: string, approvalCode: string): boolean {
    return this.receiving(tenantKey, this.events.subscriptions.approvalApps(tenantKey, approvalCode)).length > 0;
  }

  approval(tenantKey: string, inst: SimInstance, status: ApprovalEventStatus, atMs: number): void {
    for (const app of this.receiving(tenantKey, this.events.subscriptions.approvalApps(tenantKey, inst.approval_code))) {
      const numberForm = this.events.random() < this.events.options.operateTimeNumberShare;
      this.events.emitV1(app.appId, tenantKey, approvalInstanceEvent(app.appId, tenantKey, inst, status, atMs, numberForm), {
        orderKey: `approval:${app.appId}:${tenantKey}:${inst.instance_code}`,
      });
    }
  }

  approvalTask(tenantKey: string, inst: SimInstance, task: SimTask, status: TaskEventStatus, atMs: number): void {
    for (const app of this.receiving(tenantKey, this.events.subscriptions.approvalApps(tenantKey, inst.approval_code))) {
      this.events.emitV1(app.appId, tenantKey, approvalTaskEvent(app.appId, tenantKey, inst, task, status, atMs, app.custom), {
        orderKey: `approval:${app.appId}:${tenantKey}:${inst.instance_code}`,
      });
    }
  }

  approvalCc(tenantKey: string, inst: SimInstance, cc: SimCc, operate: 'CREATE' | 'READ', atMs: number): void {
    for (const app of this.receiving(tenantKey, this.events.subscriptions.approvalApps(tenantKey, inst.approval_code))) {
      this.events.emitV1(app.appId, tenantKey, approvalCcEvent(app.appId, tenantKey, inst, cc, operate, atMs, app.custom), {
        orderKey: `approval:${app.appId}:${tenantKey}:${inst.instance_code}`,
      });
    }
  }

  // ---------------------------------------------------------------- files

  /** Subscribed apps of a file, each with its subscription. */
  private fileReceivers(tenantKey: string, token: string): Array<{ appId: string; custom: boolean; sub: FileSubscription }> {
    const subs = this.events.subscriptions;
    return this.receiving(tenantKey, subs.fileApps(tenantKey, token)).flatMap((a) => {
      const sub = subs.file(a.appId, tenantKey, token);
      return sub ? [{ ...a, sub }] : [];
    });
  }

  /** `subscriber_id_list`: the users who subscribed (an app-identity subscription lists nobody: unconfirmed). */
  private subscriberIds(tenantKey: string, sub: FileSubscription, custom: boolean): UserIds[] {
    const dir = this.data.contact(tenantKey);
    return [...sub.subscribers].filter((s) => s !== APP_SUBSCRIBER).map((s) => idsOf(dir, s, custom));
  }

  table(tenantKey: string, appToken: string, table: SimTable, set: TableChangeSet): void {
    const receivers = this.fileReceivers(tenantKey, appToken);
    if (receivers.length === 0) return;
    const dir = this.data.contact(tenantKey);
    for (const app of receivers) {
      const person = (p: SimBitablePerson) => idsOf(dir, p.id, app.custom);
      // An app writing with a tenant token is no user: empty ids (unconfirmed).
      const operator = set.by ? person(set.by) : idsOf(dir, '', app.custom);
      const common = {
        file_type: 'bitable',
        file_token: appToken,
        table_id: table.table_id,
        revision: set.revision,
        operator_id: operator,
      };
      const subscribers = this.subscriberIds(tenantKey, app.sub, app.custom);
      const updateTime = Math.floor(set.at / 1000);
      const actions = recordActions(table, set.records, person);
      const per = Math.max(1, this.events.options.recordActionsPerEvent);
      for (let i = 0; i < actions.length; i += per) {
        this.events.emitV2(app.appId, tenantKey, 'drive.file.bitable_record_changed_v1', {
          ...common,
          action_list: actions.slice(i, i + per),
          subscriber_id_list: subscribers,
          update_time: updateTime,
        });
      }
      if (set.fields.length > 0) {
        this.events.emitV2(app.appId, tenantKey, 'drive.file.bitable_field_changed_v1', {
          ...common,
          action_list: fieldActions(set.fields),
          subscriber_id_list: subscribers,
          update_time: updateTime,
        });
      }
      // Record and field changes also fire the file's edit event (documented).
      if (actions.length > 0 || set.fields.length > 0) {
        this.events.emitV2(app.appId, tenantKey, 'drive.file.edit_v1', {
          file_type: 'bitable',
          file_token: appToken,
          operator_id_list: [operator],
          subscriber_id_list: subscribers,
        });
      }
    }
  }

  docs(tenantKey: string, docs: DocsTenant, change: DocChange): void {
    const objs = change.kind === 'deleted' ? change.objs : [change.obj];
    const dir = this.data.contact(tenantKey);
    for (const obj of objs) {
      for (const app of this.fileReceivers(tenantKey, obj.token)) {
        const operator = idsOf(dir, change.by, app.custom);
        const subscribers = this.subscriberIds(tenantKey, app.sub, app.custom);
        const base = { file_type: obj.type, file_token: obj.token };
        // The title/trash/delete pages show `resource_id` and `user_list` in the header, the SDK
        // `subscriber_id_list` in the event: both are sent (change-events.md §4).
        const header = { resource_id: obj.token, user_list: subscribers.map((s) => ({ union_id: s.union_id })) };
        const ownerEvent = (type: string) => {
          if (this.events.options.ownerOnlyFileEvents && !this.ownerSubscribed(docs, obj, app.appId, app.sub)) return;
          this.events.emitV2(app.appId, tenantKey, type, { ...base, operator_id: operator, subscriber_id_list: subscribers }, { header });
        };
        if (change.kind === 'edited') {
          if (change.content) {
            this.events.emitV2(app.appId, tenantKey, 'drive.file.edit_v1', { ...base, operator_id_list: [operator], subscriber_id_list: subscribers });
          }
          if (change.title) ownerEvent('drive.file.title_updated_v1');
        } else if (change.kind === 'trashed') {
          ownerEvent('drive.file.trashed_v1');
        } else {
          ownerEvent('drive.file.deleted_v1');
        }
      }
    }
  }

  /** Whether one of the subscribers owns the object (the app itself, or a subscribing user). */
  private ownerSubscribed(docs: DocsTenant, obj: SimDocObject, appId: string, sub: FileSubscription): boolean {
    return [...sub.subscribers].some((s) => docs.isOwner(obj, s === APP_SUBSCRIBER ? appPrincipal(appId) : s));
  }
}
