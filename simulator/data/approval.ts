import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { admit, decodePageToken, encodePageToken, larkReply, ok, seededRandom, servePage, type DataApiContext } from './support.js';

export type SimInstanceStatus = 'PENDING' | 'APPROVED' | 'REJECTED' | 'CANCELED' | 'DELETED';
/**
 * Every status an `approval_instance` event reports (change-events.md §2.1): the instance
 * statuses, REVERTED (the initiator revoked an approved instance; the detail keeps APPROVED and
 * says `reverted: true`), and OVERTIME_CLOSE / OVERTIME_RECOVER (the detail's status is left as it
 * is: how the detail shows them is not in the notes, unconfirmed).
 */
export type ApprovalEventStatus = SimInstanceStatus | 'REVERTED' | 'OVERTIME_CLOSE' | 'OVERTIME_RECOVER';

/** Every status an `approval_task` event reports (change-events.md §2.1). */
export type TaskEventStatus = 'PENDING' | 'APPROVED' | 'REJECTED' | 'TRANSFERRED' | 'ROLLBACK' | 'DONE' | 'REVERTED' | 'OVERTIME_CLOSE' | 'OVERTIME_RECOVER';

/** A cc of an instance, as `approval_cc` reports it: its id, the recipient, and who cc'd (user ids). */
export interface SimCc {
  id: string;
  user_id: string;
  open_id: string;
  from_user_id: string;
}

export interface SimWidget {
  id: string;
  custom_id?: string;
  name: string;
  type: string;
  value: unknown;
  ext?: unknown;
  open_ids?: string[];
}

export interface SimTask {
  id: string;
  user_id: string;
  open_id: string;
  status: 'PENDING' | 'APPROVED' | 'REJECTED' | 'TRANSFERRED' | 'DONE';
  node_id: string;
  node_name: string;
  type: 'AND' | 'OR' | 'AUTO_PASS' | 'AUTO_REJECT' | 'SEQUENTIAL';
  start_time: string;
  end_time: string;
}

export interface SimTimelineEntry {
  type: string;
  create_time: string;
  user_id?: string;
  open_id?: string;
  task_id?: string;
  comment?: string;
  ext: string;
  node_key?: string;
  /** On a CC entry: the recipients with their cc ids (approval.md §2.2). */
  cc_user_list?: Array<{ user_id: string; cc_id: string; open_id: string }>;
}

export interface SimComment {
  id: string;
  user_id: string;
  open_id: string;
  comment: string;
  create_time: string;
  files: Array<{ url: string; file_size: number; title: string; type: 'image' | 'attachment' }>;
}

/** An instance as the simulator keeps it: both id kinds; the route hides user ids from store apps. */
export interface SimInstance {
  approval_code: string;
  approval_name: string;
  instance_code: string;
  start_time: string;
  end_time: string;
  user_id: string;
  open_id: string;
  serial_number: string;
  department_id: string;
  status: SimInstanceStatus;
  uuid: string;
  /** Served as a JSON string, as Lark does. */
  form: SimWidget[];
  task_list: SimTask[];
  comment_list: SimComment[];
  timeline: SimTimelineEntry[];
  reverted: boolean;
}

export interface SimApprovalDefinition {
  approval_code: string;
  approval_name: string;
  /** What kind of form it has (0 expense, 1 leave, 2 purchase). */
  kind: number;
}

export interface ApprovalShape {
  definitions: number;
  /** Instances created per day and definition. */
  instancesPerDay: number;
  /** How far back (days before the tenant's data was generated) instances reach. */
  days: number;
}

/** About 9,600 instances per definition: enough for a year of backfill with thousands of pages. */
export const defaultApprovalShape: ApprovalShape = { definitions: 3, instancesPerDay: 24, days: 400 };

/** One recorded list request (raw query strings, as sent). */
export interface ApprovalListQuery {
  approvalCode: string | undefined;
  startTime: string | undefined;
  endTime: string | undefined;
  pageSize: string | undefined;
  pageToken: string | undefined;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const LOCALES = new Set(['zh-CN', 'en-US', 'ja-JP', 'zh-HK', 'zh-TW', 'de-DE', 'es-ES', 'fr-FR', 'id-ID', 'it-IT', 'ko-KR', 'pt-BR', 'th-TH', 'vi-VN', 'ms-MY', 'ru-RU']);
const DEFINITION_NAMES = ['Expense claim', 'Leave request', 'Purchase request'];

/** UUID-shaped, upper case, derived from a seed (approval and instance codes look like this upstream). */
function uuidFrom(seed: string): string {
  const h = createHash('md5').update(seed).digest('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const pick = <T>(rnd: () => number, items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
const rfc3339 = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}+00:00`;

interface Seed {
  code: string;
  startMs: number;
  definition: SimApprovalDefinition;
  /** Listed but the detail answers 1390003 (deleted between list and detail), or gone entirely. */
  removed?: 'detail' | 'everywhere';
  /** The status the detail starts with instead of a drawn one (createInstance: PENDING). */
  status?: SimInstanceStatus;
}

/**
 * One tenant's approval data: definitions, each with instances spread over `days` (oldest first),
 * generated deterministically. Details are built on first read and then kept, so tests can change
 * them (status changes, form edits) and a later read sees the change.
 */
export class ApprovalTenant {
  readonly definitions = new Map<string, SimApprovalDefinition>();
  /** Every list request served for this tenant, for assertions on windows and page sizes. */
  readonly listQueries: ApprovalListQuery[] = [];
  /** Instance codes whose detail was served, in order. */
  readonly detailCalls: string[] = [];
  private readonly seeds = new Map<string, Seed[]>();
  private readonly byCode = new Map<string, Seed>();
  private readonly details = new Map<string, SimInstance>();
  private added = 0;
  /** Told of each status change (SimData turns it into approval_instance events). */
  onStatus: ((inst: SimInstance, status: ApprovalEventStatus, atMs: number) => void) | undefined = undefined;
  /** Told of each task that changed (SimData turns it into approval_task events). */
  onTask: ((inst: SimInstance, task: SimTask, status: TaskEventStatus, atMs: number) => void) | undefined = undefined;
  /** Told of each cc made or read (SimData turns it into approval_cc events). */
  onCc: ((inst: SimInstance, cc: SimCc, operate: 'CREATE' | 'READ', atMs: number) => void) | undefined = undefined;
  /** Whether anyone listens to a definition's events (so addInstances builds details only then). */
  wantsEvents: ((approvalCode: string) => boolean) | undefined = undefined;
  /** The clock of advance() and createInstance() (SimData sets the simulator's). */
  now: () => number = Date.now;

  private constructor(
    readonly tenantKey: string,
    /** Generation time: instances are created before it. */
    readonly anchorMs: number,
  ) {}

  static generate(tenantKey: string, shape: ApprovalShape = defaultApprovalShape, anchorMs = Date.now()): ApprovalTenant {
    const t = new ApprovalTenant(tenantKey, anchorMs);
    for (let d = 0; d < shape.definitions; d += 1) {
      const def = t.addDefinition(DEFINITION_NAMES[d % DEFINITION_NAMES.length] ?? 'Approval', d % DEFINITION_NAMES.length);
      const rnd = seededRandom(`approval:${tenantKey}:${def.approval_code}`);
      const total = Math.round(shape.days * shape.instancesPerDay);
      const step = DAY / shape.instancesPerDay;
      const first = anchorMs - shape.days * DAY;
      const list = t.seeds.get(def.approval_code) ?? [];
      for (let i = 0; i < total; i += 1) {
        const seed: Seed = { code: uuidFrom(`${tenantKey}:${def.approval_code}:${i}`), startMs: Math.floor(first + (i + rnd() * 0.98) * step), definition: def };
        list.push(seed);
        t.byCode.set(seed.code, seed);
      }
    }
    return t;
  }

  /** Approval codes, in creation order. */
  codes(): string[] {
    return [...this.definitions.keys()];
  }

  addDefinition(name: string, kind = 0): SimApprovalDefinition {
    const def: SimApprovalDefinition = {
      approval_code: uuidFrom(`${this.tenantKey}:definition:${this.definitions.size}`),
      approval_name: name,
      kind,
    };
    this.definitions.set(def.approval_code, def);
    this.seeds.set(def.approval_code, []);
    return def;
  }

  /** Codes listed for a creation window [start, end), oldest first. */
  list(approvalCode: string, startMs: number, endMs: number): string[] {
    return (this.seeds.get(approvalCode) ?? [])
      .filter((s) => s.removed !== 'everywhere' && s.startMs >= startMs && s.startMs < endMs)
      .map((s) => s.code);
  }

  /** Every instance code created in [start, end) across definitions (or one), still listed. */
  codesBetween(startMs: number, endMs: number, approvalCode?: string): string[] {
    const codes = approvalCode ? [approvalCode] : this.codes();
    return codes.flatMap((c) => this.list(c, startMs, endMs));
  }

  /** The detail, built on first use; undefined for unknown or removed instances. */
  get(instanceCode: string): SimInstance | undefined {
    const seed = this.byCode.get(instanceCode);
    if (!seed || seed.removed) return undefined;
    let inst = this.details.get(instanceCode);
    if (!inst) {
      inst = buildInstance(this.tenantKey, seed.definition, seed.code, seed.startMs, this.anchorMs, seed.status);
      this.details.set(instanceCode, inst);
    }
    return inst;
  }

  /** Same as get, but throws for tests that name an instance that must exist. */
  instance(instanceCode: string): SimInstance {
    const inst = this.get(instanceCode);
    if (!inst) throw new Error(`simulator: no approval instance ${instanceCode}`);
    return inst;
  }

  /** Adds `count` instances spread evenly over [fromMs, toMs), e.g. a burst in one hour. */
  addInstances(approvalCode: string, count: number, fromMs: number, toMs: number): string[] {
    const def = this.definitions.get(approvalCode);
    const list = this.seeds.get(approvalCode);
    if (!def || !list) throw new Error(`simulator: unknown approval code ${approvalCode}`);
    const out: string[] = [];
    for (let i = 0; i < count; i += 1) {
      this.added += 1;
      const seed: Seed = {
        code: uuidFrom(`${this.tenantKey}:${approvalCode}:added:${this.added}`),
        startMs: Math.floor(fromMs + ((toMs - fromMs) * i) / count),
        definition: def,
      };
      list.push(seed);
      this.byCode.set(seed.code, seed);
      out.push(seed.code);
    }
    list.sort((a, b) => a.startMs - b.startMs);
    // Each instance was created (PENDING), its tasks opened and closed, maybe someone cc'd, and,
    // unless still pending, decided since: the events a subscriber would have received, in the
    // order of their times (the decision last).
    if (this.onStatus && this.wantsEvents?.(approvalCode)) {
      for (const code of out) {
        const inst = this.instance(code);
        const onStatus = this.onStatus;
        const happened: Array<{ at: number; emit: () => void }> = [{ at: Number(inst.start_time), emit: () => onStatus(inst, 'PENDING', Number(inst.start_time)) }];
        for (const t of inst.task_list) {
          happened.push({ at: Number(t.start_time), emit: () => this.onTask?.(inst, t, 'PENDING', Number(t.start_time)) });
          if (t.status !== 'PENDING') happened.push({ at: Number(t.end_time), emit: () => this.onTask?.(inst, t, t.status, Number(t.end_time)) });
        }
        for (const { cc, at } of ccsOf(inst)) happened.push({ at, emit: () => this.onCc?.(inst, cc, 'CREATE', at) });
        happened.sort((a, b) => a.at - b.at);
        for (const h of happened) h.emit();
        if (inst.status !== 'PENDING') onStatus(inst, inst.status, Number(inst.end_time));
      }
    }
    return out;
  }

  /**
   * A new instance of a definition, created now (or at `atMs`) and PENDING: emits the
   * `approval_instance` PENDING event. Returns its code.
   */
  createInstance(approvalCode: string, atMs: number = this.now()): string {
    const def = this.definitions.get(approvalCode);
    const list = this.seeds.get(approvalCode);
    if (!def || !list) throw new Error(`simulator: unknown approval code ${approvalCode}`);
    this.added += 1;
    const seed: Seed = { code: uuidFrom(`${this.tenantKey}:${approvalCode}:added:${this.added}`), startMs: atMs, definition: def, status: 'PENDING' };
    list.push(seed);
    if (list.length > 1 && list[list.length - 2]!.startMs > atMs) list.sort((a, b) => a.startMs - b.startMs);
    this.byCode.set(seed.code, seed);
    const inst = this.instance(seed.code);
    this.onStatus?.(inst, 'PENDING', atMs);
    // Its first approver's task is created with it; a cc made at submission is reported too.
    for (const t of inst.task_list) if (t.status === 'PENDING') this.onTask?.(inst, t, 'PENDING', atMs);
    for (const { cc } of ccsOf(inst)) this.onCc?.(inst, cc, 'CREATE', atMs);
    return seed.code;
  }

  /**
   * The open task is approved (`approval_task` APPROVED). When a node follows, the instance stays
   * PENDING and its next approver's task is created (`approval_task` PENDING): no
   * `approval_instance` event. After the last node, the instance is APPROVED (its event too).
   */
  passTask(instanceCode: string, atMs: number = this.now()): SimInstance {
    const inst = this.instance(instanceCode);
    const open = inst.task_list.find((t) => t.status === 'PENDING');
    if (inst.status !== 'PENDING' || !open) throw new Error(`simulator: instance ${instanceCode} has no open task`);
    const next = NODES[NODES.findIndex((n) => n.node_id === open.node_id) + 1];
    if (!next) return this.setStatus(instanceCode, 'APPROVED', atMs);
    const at = String(atMs);
    open.status = 'APPROVED';
    open.end_time = at;
    inst.timeline.push({ type: 'PASS', create_time: at, open_id: open.open_id, user_id: open.user_id, task_id: open.id, ext: '{}', node_key: open.node_id });
    const approver = person(this.tenantKey, seededRandom(`approval:${this.tenantKey}:${instanceCode}:${next.node_id}`));
    const task: SimTask = { id: String(7_000_000_000 + inst.task_list.length), ...approver, status: 'PENDING', ...next, start_time: at, end_time: '0' };
    inst.task_list.push(task);
    this.onTask?.(inst, open, 'APPROVED', atMs);
    this.onTask?.(inst, task, 'PENDING', atMs);
    return inst;
  }

  /** Someone cc's a person on the instance: a CC timeline entry and `approval_cc` CREATE. Returns the cc. */
  addCc(instanceCode: string, to: { open_id: string; user_id: string }, atMs: number = this.now()): SimCc {
    const inst = this.instance(instanceCode);
    const cc: SimCc = { id: ccId(inst.instance_code, String(atMs), to.open_id), user_id: to.user_id, open_id: to.open_id, from_user_id: inst.user_id };
    inst.timeline.push({
      type: 'CC',
      create_time: String(atMs),
      open_id: inst.open_id,
      user_id: inst.user_id,
      ext: JSON.stringify({ user_id: to.user_id, open_id: to.open_id }),
      cc_user_list: [{ user_id: to.user_id, cc_id: cc.id, open_id: to.open_id }],
    });
    this.onCc?.(inst, cc, 'CREATE', atMs);
    return cc;
  }

  /** The cc'd person reads it: `approval_cc` READ (the detail does not change). */
  readCc(instanceCode: string, cc: SimCc, atMs: number = this.now()): void {
    this.onCc?.(this.instance(instanceCode), cc, 'READ', atMs);
  }

  /**
   * Moves an instance to a status and emits its `approval_instance` event (setStatus for the
   * instance statuses; REVERTED marks an approved instance reverted; OVERTIME_* only emit).
   */
  advance(instanceCode: string, status: ApprovalEventStatus, atMs: number = this.now()): SimInstance {
    if (status === 'REVERTED' || status === 'OVERTIME_CLOSE' || status === 'OVERTIME_RECOVER') {
      const inst = this.update(instanceCode, (i) => {
        if (status === 'REVERTED') i.reverted = true;
      });
      this.onStatus?.(inst, status, atMs);
      return inst;
    }
    return this.setStatus(instanceCode, status, atMs);
  }

  /** Edits an instance in place (form, tasks, timeline...). */
  update(instanceCode: string, edit: (inst: SimInstance) => void): SimInstance {
    const inst = this.instance(instanceCode);
    edit(inst);
    return inst;
  }

  /**
   * Moves an instance to a new status the way Lark would: open tasks close, the timeline grows;
   * and emits its `approval_instance` event.
   */
  setStatus(instanceCode: string, status: SimInstanceStatus, atMs: number = Date.now()): SimInstance {
    const inst = this.changeStatus(instanceCode, status, atMs);
    this.onStatus?.(inst, status, atMs);
    return inst;
  }

  private changeStatus(instanceCode: string, status: SimInstanceStatus, atMs: number): SimInstance {
    return this.update(instanceCode, (inst) => {
      const at = String(atMs);
      const open = inst.task_list.filter((t) => t.status === 'PENDING');
      const taskStatus = status === 'APPROVED' ? 'APPROVED' : status === 'REJECTED' ? 'REJECTED' : status === 'PENDING' ? 'PENDING' : 'DONE';
      for (const t of open) {
        t.status = taskStatus;
        if (taskStatus !== 'PENDING') t.end_time = at;
      }
      // Each task this closed is reported before the instance's own event (setStatus).
      if (taskStatus !== 'PENDING') for (const t of open) this.onTask?.(inst, t, taskStatus, atMs);
      const actor = open[0];
      const entry: Record<SimInstanceStatus, string | undefined> = {
        PENDING: undefined,
        APPROVED: 'PASS',
        REJECTED: 'REJECT',
        CANCELED: 'CANCEL',
        DELETED: 'DELETE',
      };
      const type = entry[status];
      if (type) {
        const byApprover = type === 'PASS' || type === 'REJECT';
        inst.timeline.push({
          type,
          create_time: at,
          open_id: byApprover ? actor?.open_id ?? inst.open_id : inst.open_id,
          user_id: byApprover ? actor?.user_id ?? inst.user_id : inst.user_id,
          ...(byApprover && actor ? { task_id: actor.id } : {}),
          ext: '{}',
        });
      }
      inst.status = status;
      inst.end_time = status === 'PENDING' ? '0' : at;
    });
  }

  /**
   * `everywhere`: gone from lists and details. `detail`: still listed, but the detail answers
   * 1390003 (deleted between a list call and the detail call).
   */
  remove(instanceCode: string, how: 'detail' | 'everywhere' = 'everywhere'): void {
    const seed = this.byCode.get(instanceCode);
    if (!seed) throw new Error(`simulator: no approval instance ${instanceCode}`);
    seed.removed = how;
  }

  isKnownDefinition(approvalCode: string): boolean {
    return this.definitions.has(approvalCode);
  }
}

/** The approval flow every generated definition has: a manager, then finance. */
const NODES = [
  { node_id: 'node_manager', node_name: 'Manager', type: 'OR' as const },
  { node_id: 'node_finance', node_name: 'Finance', type: 'AND' as const },
];

/** A stable cc id (the generated CC entries carry none; Lark's are opaque strings). */
function ccId(instanceCode: string, at: string, openId: string): string {
  return createHash('md5').update(`cc:${instanceCode}:${at}:${openId}`).digest('hex').slice(0, 16);
}

/** The ccs of an instance's CC timeline entries, with their times (recipients from `cc_user_list`, else from `ext`). */
function ccsOf(inst: SimInstance): Array<{ cc: SimCc; at: number }> {
  return inst.timeline.flatMap((e) => {
    if (e.type !== 'CC') return [];
    const at = Number(e.create_time);
    if (e.cc_user_list) return e.cc_user_list.map((c) => ({ cc: { id: c.cc_id, user_id: c.user_id, open_id: c.open_id, from_user_id: e.user_id ?? '' }, at }));
    const to = JSON.parse(e.ext || '{}') as { user_id?: string; open_id?: string };
    return [{ cc: { id: ccId(inst.instance_code, e.create_time, to.open_id ?? ''), user_id: to.user_id ?? '', open_id: to.open_id ?? '', from_user_id: e.user_id ?? '' }, at }];
  });
}

function person(tenantKey: string, rnd: () => number): { open_id: string; user_id: string } {
  // The same shape as the contact directory's users, so joins in demos line up.
  const n = 1 + Math.floor(rnd() * 20);
  return { open_id: `ou_${tenantKey}-${n}`, user_id: `uid${n}` };
}

function buildForm(kind: number, rnd: () => number, startMs: number, tenantKey: string): SimWidget[] {
  const amount = () => Math.round(rnd() * 100_000) / 100;
  if (kind === 1) {
    const days = 1 + Math.floor(rnd() * 5);
    const from = startMs + DAY * (1 + Math.floor(rnd() * 10));
    return [
      { id: 'widget_leave_type', name: 'Leave type', type: 'radioV2', value: pick(rnd, ['Annual', 'Sick', 'Personal']) },
      { id: 'widget_period', name: 'Period', type: 'dateInterval', value: { start: rfc3339(from), end: rfc3339(from + days * DAY), interval: days } },
      { id: 'widget_reason', name: 'Reason', type: 'textarea', value: pick(rnd, ['Family trip', 'Doctor appointment', 'Moving house', '']) },
      { id: 'widget_dept', name: 'Department', type: 'department', value: [{ open_id: `od-${tenantKey}-${1 + Math.floor(rnd() * 9)}` }] },
    ];
  }
  if (kind === 2) {
    const rows = Math.floor(rnd() * 4);
    const lines: SimWidget[][] = [];
    for (let r = 0; r < rows; r += 1) {
      lines.push([
        { id: 'widget_line_item', name: 'Item', type: 'input', value: pick(rnd, ['Laptop', 'Monitor', 'Chair', 'Licence']) },
        { id: 'widget_line_qty', name: 'Quantity', type: 'number', value: 1 + Math.floor(rnd() * 9) },
        { id: 'widget_line_price', name: 'Unit price', type: 'amount', value: amount() },
      ]);
    }
    return [
      { id: 'widget_title', name: 'Title', type: 'input', value: `Purchase ${Math.floor(rnd() * 1000)}` },
      { id: 'widget_lines', name: 'Lines', type: 'fieldList', value: lines },
      { id: 'widget_tags', name: 'Tags', type: 'checkboxV2', value: rnd() < 0.5 ? ['urgent'] : ['urgent', 'capex'] },
      { id: 'widget_phone', name: 'Phone', type: 'telephone', value: { country_code: '+86', national_number: `138${Math.floor(rnd() * 1e8)}` } },
    ];
  }
  // Expense claim: always at least one row, often several, so fieldList paths get exercised.
  const rows = 1 + Math.floor(rnd() * 3);
  const items: SimWidget[][] = [];
  for (let r = 0; r < rows; r += 1) {
    items.push([
      { id: 'widget_item_desc', name: 'Description', type: 'input', value: pick(rnd, ['Taxi', 'Hotel', 'Dinner', 'Flight']) },
      { id: 'widget_item_amount', name: 'Amount', type: 'amount', value: amount() },
      { id: 'widget_item_date', name: 'Spent on', type: 'date', value: rfc3339(startMs - DAY * Math.floor(rnd() * 5)) },
    ]);
  }
  const payee = person(tenantKey, rnd);
  return [
    { id: 'widget_reason', name: 'Reason', type: 'input', value: pick(rnd, ['Customer visit', 'Conference', 'Team offsite']) },
    { id: 'widget_total', name: 'Total', type: 'amount', value: amount() },
    { id: 'widget_items', name: 'Items', type: 'fieldList', value: items },
    { id: 'widget_payee', name: 'Payee', type: 'contact', value: [payee.user_id], open_ids: [payee.open_id] },
    {
      id: 'widget_receipts',
      name: 'Receipts',
      type: 'attachmentV2',
      value: [`https://sim.example/approval/receipt-${Math.floor(rnd() * 1e6)}.pdf`],
      ext: 'receipt.pdf',
    },
  ];
}

function pickStatus(rnd: () => number, ageMs: number): SimInstanceStatus {
  const x = rnd();
  // Young instances are often still in progress; old ones mostly finished.
  const pending = ageMs < 3 * DAY ? 0.5 : 0.05;
  if (x < pending) return 'PENDING';
  const rest = (x - pending) / (1 - pending);
  if (rest < 0.72) return 'APPROVED';
  if (rest < 0.86) return 'REJECTED';
  if (rest < 0.95) return 'CANCELED';
  return 'DELETED';
}

function buildInstance(
  tenantKey: string,
  def: SimApprovalDefinition,
  code: string,
  startMs: number,
  anchorMs: number,
  forced?: SimInstanceStatus,
): SimInstance {
  const rnd = seededRandom(`approval:${tenantKey}:${code}`);
  const initiator = person(tenantKey, rnd);
  const drawn = pickStatus(rnd, anchorMs - startMs);
  const status = forced ?? drawn;
  const endMs = status === 'PENDING' ? 0 : Math.min(anchorMs, startMs + Math.floor((0.5 + rnd() * 47) * HOUR));
  const nodes = NODES;
  // How many nodes ran; the last one reached holds the decision (or is still open).
  const reached = status === 'APPROVED' ? nodes.length : 1 + Math.floor(rnd() * nodes.length);
  const tasks: SimTask[] = [];
  const timeline: SimTimelineEntry[] = [{ type: 'START', create_time: String(startMs), ...initiator, ext: '' }];
  let t = startMs;
  for (let i = 0; i < reached; i += 1) {
    const node = nodes[i]!;
    const approver = person(tenantKey, rnd);
    const last = i === reached - 1;
    const taskStart = t + 1000;
    const taskEnd = status === 'PENDING' && last ? 0 : Math.max(taskStart, last ? endMs : Math.min(endMs, taskStart + Math.floor(rnd() * HOUR)));
    const taskStatus: SimTask['status'] = !last
      ? 'APPROVED'
      : status === 'PENDING'
        ? 'PENDING'
        : status === 'APPROVED'
          ? 'APPROVED'
          : status === 'REJECTED'
            ? 'REJECTED'
            : 'DONE';
    const id = String(7_000_000_000 + Math.floor(rnd() * 1e9));
    tasks.push({ id, ...approver, status: taskStatus, ...node, start_time: String(taskStart), end_time: String(taskEnd) });
    if (taskStatus === 'APPROVED' || taskStatus === 'REJECTED') {
      timeline.push({
        type: taskStatus === 'APPROVED' ? 'PASS' : 'REJECT',
        create_time: String(taskEnd),
        ...approver,
        task_id: id,
        ...(taskStatus === 'REJECTED' ? { comment: 'Missing receipt' } : {}),
        ext: '{}',
        node_key: node.node_id,
      });
    }
    t = taskEnd || taskStart;
  }
  if (rnd() < 0.3) {
    const cc = person(tenantKey, rnd);
    timeline.push({ type: 'CC', create_time: String(startMs + 500), ...initiator, ext: JSON.stringify({ user_id: cc.user_id, open_id: cc.open_id }) });
    timeline.sort((a, b) => Number(a.create_time) - Number(b.create_time));
  }
  if (status === 'CANCELED' || status === 'DELETED') {
    timeline.push({ type: 'CANCEL', create_time: String(endMs), ...initiator, ext: '{}' });
    if (status === 'DELETED') timeline.push({ type: 'DELETE', create_time: String(endMs), ...initiator, ext: '{}' });
  }
  const comments: SimComment[] = [];
  for (let i = 0, n = Math.floor(rnd() * 3); i < n; i += 1) {
    const who = person(tenantKey, rnd);
    comments.push({
      id: String(8_000_000_000 + Math.floor(rnd() * 1e9)),
      ...who,
      comment: pick(rnd, ['Please attach the invoice', 'OK', 'Checked']),
      create_time: String(startMs + (i + 1) * 60_000),
      files: i === 0 && rnd() < 0.5 ? [{ url: 'https://sim.example/approval/file.png', file_size: 2048, title: 'file.png', type: 'image' }] : [],
    });
  }
  const day = new Date(startMs).toISOString().slice(0, 10).replace(/-/g, '');
  return {
    approval_code: def.approval_code,
    approval_name: def.approval_name,
    instance_code: code,
    start_time: String(startMs),
    end_time: String(endMs),
    ...initiator,
    serial_number: `${day}${String(Math.floor(rnd() * 10_000)).padStart(4, '0')}`,
    department_id: `od-${tenantKey}-${1 + Math.floor(rnd() * 9)}`,
    status,
    uuid: `req-${code.slice(0, 8).toLowerCase()}`,
    form: buildForm(def.kind, rnd, startMs, tenantKey),
    task_list: tasks,
    comment_list: comments,
    timeline,
    reverted: false,
  };
}

/** Without the custom-app-only field scope, Lark leaves user_id empty (approval.md §0). */
function view(inst: SimInstance, withUserIds: boolean): Record<string, unknown> {
  const hide = <T extends { user_id?: string }>(x: T): T => (withUserIds || x.user_id === undefined ? x : { ...x, user_id: '' });
  return {
    ...hide(inst),
    form: JSON.stringify(inst.form),
    task_list: inst.task_list.map(hide),
    comment_list: inst.comment_list.map(hide),
    timeline: inst.timeline.map((e) => (e.cc_user_list ? { ...hide(e), cc_user_list: e.cc_user_list.map(hide) } : hide(e))),
  };
}

const isMs = (v: string | undefined): v is string => v !== undefined && /^\d{1,16}$/.test(v);

export function registerApprovalRoutes(app: FastifyInstance, ctx: DataApiContext, data: (tenantKey: string) => ApprovalTenant): void {
  app.get<{ Querystring: Record<string, string | undefined> }>('/open-apis/approval/v4/instances', async (req, reply) => {
    // Not stated upstream; peers quote 100/min (approval.md §1, unconfirmed).
    const who = admit(ctx, req, reply, 'approval.instances.list', { perMinute: 100 });
    if (!who) return reply;
    const q = req.query;
    const tenant = data(who.tenantKey);
    tenant.listQueries.push({ approvalCode: q.approval_code, startTime: q.start_time, endTime: q.end_time, pageSize: q.page_size, pageToken: q.page_token });
    if (!q.approval_code || !tenant.isKnownDefinition(q.approval_code)) {
      return larkReply(reply, 400, { code: 1390002, msg: 'approval code not found' });
    }
    if (!isMs(q.start_time) || !isMs(q.end_time) || Number(q.start_time) > Number(q.end_time)) {
      return larkReply(reply, 400, { code: 1390001, msg: 'param is invalid: start_time and end_time are required Unix milliseconds, start <= end' });
    }
    const size = q.page_size === undefined ? 100 : Number(q.page_size);
    if (!Number.isInteger(size) || size < 1 || size > 100) {
      return larkReply(reply, 400, { code: 1390001, msg: 'param is invalid: page_size must be 1-100' });
    }
    const offset = decodePageToken(q.page_token);
    if (offset === undefined) return larkReply(reply, 400, { code: 1390001, msg: 'param is invalid: page_token' });
    const all = tenant.list(q.approval_code, Number(q.start_time), Number(q.end_time));
    const page = all.slice(offset, offset + size);
    const next = offset + page.length;
    const listing = next < all.length ? { instance_code_list: page, has_more: true, page_token: encodePageToken(next) } : { instance_code_list: page, has_more: false };
    return ok(reply, servePage(ctx, 'approval.instances.list', listing));
  });

  app.get<{ Params: { instance_id: string }; Querystring: Record<string, string | undefined> }>(
    '/open-apis/approval/v4/instances/:instance_id',
    async (req, reply) => {
      const who = admit(ctx, req, reply, 'approval.instances.get', { perSecond: 50, perMinute: 1000 });
      if (!who) return reply;
      const q = req.query;
      const userIdType = q.user_id_type ?? 'open_id';
      if (!['open_id', 'union_id', 'user_id'].includes(userIdType) || (q.locale !== undefined && !LOCALES.has(q.locale))) {
        return larkReply(reply, 400, { code: 1390001, msg: 'param is invalid: user_id_type or locale' });
      }
      const tenant = data(who.tenantKey);
      const inst = tenant.get(req.params.instance_id);
      if (!inst) return larkReply(reply, 400, { code: 1390003, msg: 'instance code not found' });
      tenant.detailCalls.push(inst.instance_code);
      return ok(reply, view(inst, ctx.sim.getApp(who.appId).kind === 'custom'));
    },
  );
}
