import type { LarkSimulator } from '../lark-simulator.js';
import type { ChangeKind, ChangeSource } from '../events/generator.js';
import type { ApprovalTenant, SimInstanceStatus } from './approval.js';
import type { BitableTenant } from './bitable/seed.js';
import type { ContactDirectory } from './contact.js';
import type { DocsTenant } from './docs/store.js';

/**
 * The changes `sim.events.generate()` makes, one at a time, through the same edit methods tests
 * use (so each emits its events as a test edit does):
 * - contact: mostly a member's job title changes; now and then a member joins, or one who joined
 *   this way leaves;
 * - approval: an instance is created (PENDING), or one created this way is decided;
 * - bitable: a record of the main Base's small "Orders" table is edited, now and then one is added
 *   or deleted (never the million-record table a benchmark may be syncing);
 * - docs: a document, a sheet or a wiki page of the generated Drive gets a new revision.
 */

export interface ChangeData {
  contact(tenantKey: string): ContactDirectory;
  approval(tenantKey: string): ApprovalTenant;
  bitable(tenantKey: string): BitableTenant;
  docs(tenantKey: string): DocsTenant;
}

const TITLES = ['Engineer', 'Designer', 'Manager', 'Analyst', 'Lead', 'Director'];
const DECISIONS: SimInstanceStatus[] = ['APPROVED', 'APPROVED', 'REJECTED', 'CANCELED'];
const pick = <T>(rnd: () => number, items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;

export class DataChanges implements ChangeSource {
  /** Per tenant: members added by the generator (they may leave again), instances it left pending. */
  private readonly joined = new Map<string, string[]>();
  private readonly pending = new Map<string, string[]>();
  private seq = 0;

  constructor(
    private readonly sim: LarkSimulator,
    private readonly data: ChangeData,
  ) {}

  change(kind: ChangeKind, tenantKey: string, rnd: () => number): boolean {
    this.seq += 1;
    switch (kind) {
      case 'contact':
        return this.contact(tenantKey, rnd);
      case 'approval':
        return this.approval(tenantKey, rnd);
      case 'bitable':
        return this.bitable(tenantKey, rnd);
      case 'docs':
        return this.docs(tenantKey, rnd);
    }
  }

  private contact(tenantKey: string, rnd: () => number): boolean {
    const dir = this.data.contact(tenantKey);
    const joined = this.joined.get(tenantKey) ?? [];
    this.joined.set(tenantKey, joined);
    const r = rnd();
    if (r < 0.1 && joined.length > 0) {
      dir.deleteUser(joined.shift()!);
      return true;
    }
    if (r < 0.2) {
      const depts = [...dir.departments.values()].filter((d) => !d.status.is_deleted);
      const dept = depts.length > 0 ? pick(rnd, depts).open_department_id : '0';
      joined.push(dir.addUser({ department_ids: [dept] }).open_id);
      return true;
    }
    const users = [...dir.users.values()];
    if (users.length === 0) return false;
    const user = pick(rnd, users);
    dir.updateUser(user.open_id, { job_title: `${pick(rnd, TITLES)} ${this.seq}` });
    return true;
  }

  private approval(tenantKey: string, rnd: () => number): boolean {
    const tenant = this.data.approval(tenantKey);
    const pending = this.pending.get(tenantKey) ?? [];
    this.pending.set(tenantKey, pending);
    if (pending.length > 0 && rnd() < 0.5) {
      tenant.advance(pending.shift()!, pick(rnd, DECISIONS));
      return true;
    }
    const codes = tenant.codes();
    if (codes.length === 0) return false;
    pending.push(tenant.createInstance(pick(rnd, codes)));
    return true;
  }

  private bitable(tenantKey: string, rnd: () => number): boolean {
    const bitable = this.data.bitable(tenantKey);
    const { appToken, orders } = bitable.refs.main;
    const table = bitable.table(appToken, orders);
    const r = rnd();
    if (r < 0.1 || table.count === 0) {
      table.add([{ Order: [{ type: 'text', text: `Generated order ${this.seq}` }], Qty: 1 + Math.floor(rnd() * 9) }]);
      return true;
    }
    const rec = table.nth(Math.floor(rnd() * table.count));
    if (!rec) return false;
    if (r < 0.15 && table.count > 5) table.delete(rec.record_id);
    else table.edit(rec.record_id, { Qty: 1 + Math.floor(rnd() * 99) });
    return true;
  }

  /** The documents the docs changes edit: a docx, a sheet and a Base-type file in the team drive, a wiki page. */
  private docTargets(docs: DocsTenant): string[] {
    const { drive, wikiDoc } = docs.refs;
    return [drive.docx, drive.sheet, drive.doc, wikiDoc.document].filter((t) => docs.object(t) && !docs.object(t)!.trashed);
  }

  private docs(tenantKey: string, rnd: () => number): boolean {
    const docs = this.data.docs(tenantKey);
    const targets = this.docTargets(docs);
    if (targets.length === 0) return false;
    docs.edit(pick(rnd, targets), { append: `Generated change ${this.seq}.` });
    return true;
  }

  subscribeAll(tenantKey: string, kinds: readonly ChangeKind[]): void {
    const subs = this.sim.events.subscriptions;
    for (const app of this.sim.listApps()) {
      if (!this.sim.isInstalled(app.appId, tenantKey)) continue;
      if (kinds.includes('approval')) {
        for (const code of this.data.approval(tenantKey).codes()) subs.subscribeApproval(app.appId, tenantKey, code);
      }
      if (kinds.includes('bitable')) subs.subscribeFile(app.appId, tenantKey, this.data.bitable(tenantKey).refs.main.appToken, 'bitable');
      if (kinds.includes('docs')) {
        const docs = this.data.docs(tenantKey);
        for (const t of this.docTargets(docs)) subs.subscribeFile(app.appId, tenantKey, t, docs.object(t)!.type);
      }
    }
  }
}
