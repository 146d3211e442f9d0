import { seededRandom } from '../support.js';
import { BASE_UTC_OFFSET_MS, DAY_MS, FieldType, GENERATED_BEFORE_MS, SimTable, baseDay, type SimBitableField, type SimBitablePerson } from './table.js';
import type { SimMedia } from './values.js';
import { BitableWriteState, sumWriteStats, type BaseWriteStats, type WriteFault } from './writes.js';

/**
 * The generated Base data of one tenant: three bases (Projects and Ledger, a wiki-hosted Tasks, a
 * million-row Events), their fields and records, and the wiki nodes pointing at them, all derived
 * deterministically from the tenant key.
 */

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function token(seed: string, length: number): string {
  const rnd = seededRandom(seed);
  let out = '';
  for (let i = 0; i < length; i += 1) out += ALNUM[Math.floor(rnd() * ALNUM.length)] ?? 'A';
  return out;
}

export interface SimBase {
  app_token: string;
  name: string;
  tables: Map<string, SimTable>;
}

export interface SimWikiNode {
  space_id: string;
  node_token: string;
  obj_token: string;
  obj_type: 'bitable' | 'docx' | 'sheet';
  title: string;
}

export interface BitableShape {
  /** rows in "Projects" (every kind of field, ModifiedTime included) */
  projects: number;
  /** rows in "Ledger" (CreatedTime but no ModifiedTime field) */
  ledger: number;
  /** rows in "Tasks" of the wiki-hosted base */
  tasks: number;
  /** rows in "Events" (generated lazily: meant for a million) */
  events: number;
  /**
   * rows in "Orders" of the main base (default 20): a table for writes, with every writable field
   * type and every read-only one (formula, lookup, auto number, created/modified time and by).
   */
  orders: number;
}

export const defaultBitableShape: BitableShape = { projects: 1234, ledger: 640, tasks: 25, events: 1_000_000, orders: 20 };

export interface BitableRequest {
  api: 'fields' | 'search' | 'batch_get' | 'create' | 'update' | 'delete' | 'batch_create' | 'batch_update' | 'batch_delete' | 'upload';
  appToken: string;
  tableId: string;
  query: Record<string, string | undefined>;
  body: unknown;
  at: number;
}

/** Ids of the generated bases, for tests and benchmarks. */
export interface BitableRefs {
  main: { appToken: string; projects: string; ledger: string; orders: string; openView: string; allView: string };
  wiki: { nodeToken: string; appToken: string; tasks: string };
  big: { appToken: string; events: string };
  /** a wiki node that is a docx, not a Base */
  docNode: string;
}

/** One tenant's bases and wiki nodes, generated deterministically from the tenant key. */
export class BitableTenant {
  readonly bases = new Map<string, SimBase>();
  readonly nodes = new Map<string, SimWikiNode>();
  readonly refs: BitableRefs;
  /**
   * Every fields / search / batch_get request, record write and media upload this tenant received,
   * in order (query and body included).
   */
  readonly requests: BitableRequest[] = [];
  /** Write calls in progress, client_tokens, counters and injected faults (writes.ts). */
  readonly writes = new BitableWriteState();
  /** Files uploaded with drive/v1/medias/upload_all, by file_token (media.ts). */
  readonly media = new Map<string, SimMedia>();
  private throttles = 0;
  /**
   * Who may manage each Base (app ids and user open ids), which the Drive file subscribe call
   * needs (change-events.md §3: else 1069603). Absent = every app and user may (the tolerant
   * default: tests that do not care get events).
   */
  private readonly managers = new Map<string, Set<string>>();

  constructor(
    readonly tenantKey: string,
    shape: BitableShape,
    now: () => number,
  ) {
    const t = (name: string, n: number) => token(`bitable:${tenantKey}:${name}`, n);
    const person = (k: number): SimBitablePerson => ({
      id: `ou_${tenantKey}-${k}`,
      name: `User ${k}`,
      en_name: `User ${k}`,
      email: `user${k}@example.com`,
    });
    const fld = (name: string, type: number, ui_type: string, extra: Partial<SimBitableField> = {}): SimBitableField => ({
      field_id: `fld${t(`field:${name}`, 7)}`,
      field_name: name,
      type,
      ui_type,
      is_primary: false,
      ...extra,
    });
    /** created/modified before GENERATED_BEFORE_MS, spread over a year */
    const times = (rnd: () => number) => {
      const created = GENERATED_BEFORE_MS - 365 * DAY_MS + Math.floor(rnd() * 300 * DAY_MS);
      const modified = created + Math.floor(rnd() * (GENERATED_BEFORE_MS - 1 - created));
      return { created, modified };
    };

    const main: SimBase = { app_token: `bascn${t('app:main', 22)}`, name: 'Operations', tables: new Map() };
    const wiki: SimBase = { app_token: `bascn${t('app:wiki', 22)}`, name: 'Team wiki base', tables: new Map() };
    const big: SimBase = { app_token: `bascn${t('app:big', 22)}`, name: 'Event log', tables: new Map() };

    // ------------------------------------------------------------ Projects: every kind of field
    const statuses = ['Todo', 'Doing', 'Done'];
    const tags = ['ops', 'q3', 'infra', 'ux'];
    const projectsFields = [
      fld('Title', FieldType.Text, 'Text', { is_primary: true }),
      fld('Budget', FieldType.Number, 'Currency', { property: { formatter: '0.00', currency_code: 'CNY' } }),
      fld('Status', FieldType.SingleSelect, 'SingleSelect', {
        property: { options: statuses.map((name, i) => ({ name, id: `opt${t(`status:${name}`, 7)}`, color: i })) },
      }),
      fld('Tags', FieldType.MultiSelect, 'MultiSelect', {
        property: { options: tags.map((name, i) => ({ name, id: `opt${t(`tag:${name}`, 7)}`, color: i })) },
      }),
      fld('Due', FieldType.DateTime, 'DateTime', { property: { date_formatter: 'yyyy/MM/dd', auto_fill: false } }),
      fld('Done', FieldType.Checkbox, 'Checkbox'),
      fld('Owner', FieldType.User, 'User', { property: { multiple: false } }),
      fld('Parent', FieldType.SingleLink, 'SingleLink', { property: { multiple: false } }),
      fld('Score', FieldType.Formula, 'Formula', {
        property: { formula_expression: 'bitable::$table[tbl].$field[Budget]*2', type: { data_type: 2, ui_type: 'Number' } },
      }),
      fld('Website', FieldType.Url, 'Url'),
      fld('Created', FieldType.CreatedTime, 'CreatedTime', { property: { date_formatter: 'yyyy/MM/dd HH:mm' } }),
      fld('Modified', FieldType.ModifiedTime, 'ModifiedTime', { property: { date_formatter: 'yyyy/MM/dd HH:mm' } }),
    ];
    const projectsId = `tbl${t('table:projects', 13)}`;
    const openView = `vew${t('view:open', 7)}`;
    const allView = `vew${t('view:all', 7)}`;
    const projects = new SimTable(
      projectsId,
      'Projects',
      'P',
      projectsFields,
      [
        { view_id: allView, view_name: 'All' },
        { view_id: openView, view_name: 'Open', shows: (r) => r.fields.Done !== true },
      ],
      shape.projects,
      (i) => {
        const rnd = seededRandom(`bitable:${tenantKey}:P:${i}`);
        const { created, modified } = times(rnd);
        const owner = person(1 + Math.floor(rnd() * 20));
        const editor = person(1 + Math.floor(rnd() * 20));
        const fields: Record<string, unknown> = {};
        const title: Array<Record<string, unknown>> = [{ type: 'text', text: `Project ${i + 1}` }];
        const flavour = rnd();
        if (flavour < 0.2) {
          title.push({ type: 'text', text: ' for ' }, { type: 'mention', mentionType: 'User', token: owner.id, name: owner.name, mentionNotify: false });
        }
        else if (flavour < 0.3) title.push({ type: 'text', text: ' ' }, { type: 'url', text: 'spec', link: `https://example.com/spec/${i}` });
        fields.Title = title;
        const budget = Math.round(rnd() * 1_000_000) / 100;
        if (rnd() < 0.9) fields.Budget = budget;
        fields.Status = statuses[Math.floor(rnd() * statuses.length)];
        const chosen = tags.filter(() => rnd() < 0.35);
        if (chosen.length > 0) fields.Tags = chosen;
        if (rnd() < 0.8) fields.Due = (baseDay(created) + 30 + Math.floor(rnd() * 60)) * DAY_MS - BASE_UTC_OFFSET_MS;
        if (rnd() < 0.4) fields.Done = true;
        fields.Owner = [owner];
        if (i > 0 && rnd() < 0.3) fields.Parent = { link_record_ids: [projects.recordId(Math.floor(rnd() * i))] };
        fields.Score = { type: 2, value: [fields.Budget === undefined ? 0 : budget * 2] };
        if (rnd() < 0.5) fields.Website = { text: `site ${i + 1}`, link: `https://example.com/p/${i + 1}` };
        fields.Created = created;
        fields.Modified = modified;
        return { fields, created_by: owner, created_time: created, last_modified_by: editor, last_modified_time: modified };
      },
      now,
    );

    // ------------------------------------------------------------ Ledger: no ModifiedTime field
    const ledgerFields = [
      fld('Name', FieldType.Text, 'Text', { is_primary: true }),
      fld('Phone', FieldType.Phone, 'Phone'),
      fld('Email', FieldType.Text, 'Email'),
      fld('Amount', FieldType.Number, 'Number', { property: { formatter: '0.00' } }),
      fld('Receipt', FieldType.Attachment, 'Attachment'),
      fld('Logged', FieldType.CreatedTime, 'CreatedTime'),
    ];
    const ledgerViews = [{ view_id: `vew${t('view:ledger', 7)}`, view_name: 'Grid' }];
    const ledger = new SimTable(`tbl${t('table:ledger', 13)}`, 'Ledger', 'L', ledgerFields, ledgerViews, shape.ledger, (i) => {
      const rnd = seededRandom(`bitable:${tenantKey}:L:${i}`);
      const { created, modified } = times(rnd);
      const who = person(1 + Math.floor(rnd() * 20));
      const fields: Record<string, unknown> = {
        Name: [{ type: 'text', text: `Entry ${i + 1}` }],
        Amount: Math.round(rnd() * 100_000) / 100,
        Logged: created,
      };
      if (rnd() < 0.7) fields.Phone = `+86${13_000_000_000 + Math.floor(rnd() * 999_999_999)}`;
      if (rnd() < 0.6) fields.Email = [{ type: 'url', text: who.email, link: `mailto:${who.email}` }];
      if (rnd() < 0.2) {
        const file = `box${t(`file:${i}`, 20)}`;
        fields.Receipt = [
          {
            file_token: file,
            name: `receipt-${i + 1}.pdf`,
            type: 'application/pdf',
            size: 1000 + Math.floor(rnd() * 90_000),
            url: `https://open.feishu.cn/open-apis/drive/v1/medias/${file}/download`,
            tmp_url: `https://open.feishu.cn/open-apis/drive/v1/medias/batch_get_tmp_download_url?file_tokens=${file}`,
          },
        ];
      }
      return { fields, created_by: who, created_time: created, last_modified_by: who, last_modified_time: modified };
    }, now);
    main.tables.set(projects.table_id, projects);
    main.tables.set(ledger.table_id, ledger);

    // ------------------------------------------------------------ Tasks, in a wiki-hosted base
    const tasks = new SimTable(
      `tbl${t('table:tasks', 13)}`,
      'Tasks',
      'T',
      [
        fld('Task', FieldType.Text, 'Text', { is_primary: true }),
        fld('Assignee', FieldType.User, 'User', { property: { multiple: true } }),
        fld('Due', FieldType.DateTime, 'DateTime'),
        fld('Done', FieldType.Checkbox, 'Checkbox'),
        fld('Updated', FieldType.ModifiedTime, 'ModifiedTime'),
      ],
      [{ view_id: `vew${t('view:tasks', 7)}`, view_name: 'Board' }],
      shape.tasks,
      (i) => {
        const rnd = seededRandom(`bitable:${tenantKey}:T:${i}`);
        const { created, modified } = times(rnd);
        const who = person(1 + Math.floor(rnd() * 20));
        const fields: Record<string, unknown> = { Task: [{ type: 'text', text: `Task ${i + 1}` }], Assignee: [who], Updated: modified };
        if (rnd() < 0.5) fields.Due = modified + 7 * DAY_MS;
        if (rnd() < 0.3) fields.Done = true;
        return { fields, created_by: who, created_time: created, last_modified_by: who, last_modified_time: modified };
      },
      now,
    );
    wiki.tables.set(tasks.table_id, tasks);

    // ------------------------------------------------------------ Events: a million, lazily
    const categories = ['click', 'view', 'purchase', 'signup', 'error'];
    const events = new SimTable(
      `tbl${t('table:events', 13)}`,
      'Events',
      'E',
      [
        fld('Name', FieldType.Text, 'Text', { is_primary: true }),
        fld('Value', FieldType.Number, 'Number'),
        fld('Category', FieldType.SingleSelect, 'SingleSelect', {
          property: { options: categories.map((name, i) => ({ name, id: `opt${t(`cat:${name}`, 7)}`, color: i })) },
        }),
        fld('When', FieldType.DateTime, 'DateTime'),
        fld('Created', FieldType.CreatedTime, 'CreatedTime'),
        fld('Modified', FieldType.ModifiedTime, 'ModifiedTime'),
      ],
      [{ view_id: `vew${t('view:events', 7)}`, view_name: 'Grid' }],
      shape.events,
      (i) => {
        const rnd = seededRandom(`bitable:${tenantKey}:E:${i}`);
        const { created, modified } = times(rnd);
        const who = person(1 + (i % 20));
        return {
          fields: {
            Name: [{ type: 'text', text: `Event ${i + 1}` }],
            Value: Math.floor(rnd() * 10_000),
            Category: categories[i % categories.length],
            When: created,
            Created: created,
            Modified: modified,
          },
          created_by: who,
          created_time: created,
          last_modified_by: who,
          last_modified_time: modified,
        };
      },
      now,
    );
    big.tables.set(events.table_id, events);

    // ------------------------------------------------------------ Orders: a table to write to
    const stages = ['New', 'Paid', 'Shipped'];
    const labels = ['urgent', 'gift'];
    const ordersFields = [
      fld('Order', FieldType.Text, 'Text', { is_primary: true }),
      fld('Qty', FieldType.Number, 'Number', { property: { formatter: '0' } }),
      fld('Price', FieldType.Number, 'Currency', { property: { formatter: '0.00', currency_code: 'CNY' } }),
      fld('Stage', FieldType.SingleSelect, 'SingleSelect', {
        property: { options: stages.map((name, i) => ({ name, id: `opt${t(`stage:${name}`, 7)}`, color: i })) },
      }),
      fld('Labels', FieldType.MultiSelect, 'MultiSelect', {
        property: { options: labels.map((name, i) => ({ name, id: `opt${t(`label:${name}`, 7)}`, color: i })) },
      }),
      fld('Ordered', FieldType.DateTime, 'DateTime', { property: { date_formatter: 'yyyy/MM/dd', auto_fill: false } }),
      fld('Paid', FieldType.Checkbox, 'Checkbox'),
      fld('Buyer', FieldType.User, 'User', { property: { multiple: true } }),
      fld('Contact', FieldType.Phone, 'Phone'),
      fld('Email', FieldType.Text, 'Email'),
      fld('Page', FieldType.Url, 'Url'),
      fld('Files', FieldType.Attachment, 'Attachment'),
      fld('Project', FieldType.SingleLink, 'SingleLink', { property: { multiple: true, table_id: projectsId, table_name: 'Projects' } }),
      fld('Total', FieldType.Formula, 'Formula', {
        property: { formula_expression: 'bitable::$table[tbl].$field[Qty]*bitable::$table[tbl].$field[Price]', type: { data_type: 2, ui_type: 'Number' } },
      }),
      fld('Project title', FieldType.Lookup, 'Lookup', { property: { table_id: projectsId, type: { data_type: 1, ui_type: 'Text' } } }),
      fld('No', FieldType.AutoNumber, 'AutoNumber', { property: { auto_serial: { type: 'auto_increment_number' } } }),
      fld('Created', FieldType.CreatedTime, 'CreatedTime', { property: { date_formatter: 'yyyy/MM/dd HH:mm' } }),
      fld('Modified', FieldType.ModifiedTime, 'ModifiedTime', { property: { date_formatter: 'yyyy/MM/dd HH:mm' } }),
      fld('Creator', FieldType.CreatedUser, 'CreatedUser'),
      fld('Editor', FieldType.ModifiedUser, 'ModifiedUser'),
    ];
    /** Total = Qty × Price; Project title = the linked projects' titles (formula/lookup results are lists). */
    const deriveOrder = (fields: Record<string, unknown>) => {
      const qty = typeof fields.Qty === 'number' ? fields.Qty : 0;
      const price = typeof fields.Price === 'number' ? fields.Price : 0;
      fields.Total = { type: 2, value: [Math.round(qty * price * 100) / 100] };
      const linked = (fields.Project as { link_record_ids?: string[] } | undefined)?.link_record_ids ?? [];
      const titles = linked.flatMap((id) => (projects.get(id)?.fields.Title as unknown[] | undefined) ?? []);
      if (titles.length > 0) fields['Project title'] = { type: 1, value: titles };
      else delete fields['Project title'];
    };
    const orders = new SimTable(
      `tbl${t('table:orders', 13)}`,
      'Orders',
      'O',
      ordersFields,
      [{ view_id: `vew${t('view:orders', 7)}`, view_name: 'Grid' }],
      shape.orders,
      (i) => {
        const rnd = seededRandom(`bitable:${tenantKey}:O:${i}`);
        const { created, modified } = times(rnd);
        const buyer = person(1 + Math.floor(rnd() * 20));
        const fields: Record<string, unknown> = {
          Order: [{ type: 'text', text: `Order ${i + 1}` }],
          Qty: 1 + Math.floor(rnd() * 9),
          Price: Math.round(rnd() * 100_000) / 100,
          Stage: stages[Math.floor(rnd() * stages.length)],
          Ordered: created,
          Buyer: [buyer],
          No: String(i + 1),
          Created: created,
          Modified: modified,
          Creator: [buyer],
          Editor: [buyer],
        };
        if (rnd() < 0.5) fields.Paid = true;
        if (rnd() < 0.3) fields.Labels = labels.filter(() => rnd() < 0.6);
        if (rnd() < 0.4) fields.Project = { link_record_ids: [projects.recordId(Math.floor(rnd() * Math.max(1, shape.projects)))] };
        if (Array.isArray(fields.Labels) && fields.Labels.length === 0) delete fields.Labels;
        if (fields.Project && shape.projects === 0) delete fields.Project;
        deriveOrder(fields);
        return { fields, created_by: buyer, created_time: created, last_modified_by: buyer, last_modified_time: modified };
      },
      now,
    );
    orders.derive = deriveOrder;
    main.tables.set(orders.table_id, orders);
    // Score is Budget × 2 (its formula), also after an edit.
    projects.derive = (fields) => {
      fields.Score = { type: 2, value: [typeof fields.Budget === 'number' ? fields.Budget * 2 : 0] };
    };

    for (const b of [main, wiki, big]) this.bases.set(b.app_token, b);

    const space = String(7_000_000_000_000_000_000n + BigInt(Math.floor(seededRandom(`space:${tenantKey}`)() * 1e15)));
    const wikiNode = `wikcn${t('node:base', 22)}`;
    const docNode = `wikcn${t('node:doc', 22)}`;
    this.nodes.set(wikiNode, { space_id: space, node_token: wikiNode, obj_token: wiki.app_token, obj_type: 'bitable', title: 'Team tasks' });
    this.nodes.set(docNode, { space_id: space, node_token: docNode, obj_token: `doxcn${t('doc:handbook', 22)}`, obj_type: 'docx', title: 'Handbook' });

    this.refs = {
      main: { appToken: main.app_token, projects: projects.table_id, ledger: ledger.table_id, orders: orders.table_id, openView, allView },
      wiki: { nodeToken: wikiNode, appToken: wiki.app_token, tasks: tasks.table_id },
      big: { appToken: big.app_token, events: events.table_id },
      docNode,
    };
  }

  table(appToken: string, tableId: string): SimTable {
    const table = this.bases.get(appToken)?.tables.get(tableId);
    if (!table) throw new Error(`simulator: no table ${appToken}/${tableId} for ${this.tenantKey}`);
    return table;
  }

  /**
   * Removes a table, as deleting it upstream does: later fields, records/search and batch_get calls
   * on it answer 1254041 TableIdNotFound. Returns the removed table.
   */
  dropTable(appToken: string, tableId: string): SimTable {
    const table = this.table(appToken, tableId);
    this.bases.get(appToken)?.tables.delete(tableId);
    return table;
  }

  /**
   * Sets who may manage a Base: app ids and user open ids (an empty list: nobody, so the file
   * subscribe call answers 1069603); undefined = everyone again.
   */
  setManagers(appToken: string, ids: Iterable<string> | undefined): void {
    if (ids === undefined) this.managers.delete(appToken);
    else this.managers.set(appToken, new Set(ids));
  }

  /** Whether an app (its id) or a user (open id) may manage the Base. */
  canManage(appToken: string, id: string): boolean {
    const set = this.managers.get(appToken);
    return set === undefined || set.has(id);
  }

  /** Every table of every Base, with its Base's app_token. */
  *allTables(): Iterable<{ appToken: string; table: SimTable }> {
    for (const b of this.bases.values()) for (const table of b.tables.values()) yield { appToken: b.app_token, table };
  }

  /** The next `count` bitable calls of this tenant answer Base's own throttle: HTTP 200, code 1254290. */
  injectThrottle(count = 1): void {
    this.throttles += count;
  }

  /** Consumes one injected throttle, if any. */
  takeThrottle(): boolean {
    if (this.throttles <= 0) return false;
    this.throttles -= 1;
    return true;
  }

  /** Counters of record writes to one Base (live object; see BaseWriteStats). */
  writeStats(appToken: string): BaseWriteStats {
    return this.writes.statsOf(appToken);
  }

  /** Counters of record writes summed over this tenant's Bases (a snapshot). */
  writeTotals(): BaseWriteStats {
    return sumWriteStats(this.writes.allStats().values());
  }

  /** The next matching write call(s) fail as described (1255040: written first, then answered 504). */
  injectWriteFault(fault: WriteFault): void {
    this.writes.inject(fault);
  }

  /** Search requests to one table, in order (for assertions on page_size, filter, view). */
  searches(appToken: string, tableId: string): BitableRequest[] {
    return this.requests.filter((r) => r.api === 'search' && r.appToken === appToken && r.tableId === tableId);
  }

  /** batch_get requests to one table, in order (their bodies hold the record ids asked for). */
  batchGets(appToken: string, tableId: string): BitableRequest[] {
    return this.requests.filter((r) => r.api === 'batch_get' && r.appToken === appToken && r.tableId === tableId);
  }
}

/** A tenant's Base data, created on first use. */
export function createBitableTenant(tenantKey: string, now: () => number, shape: Partial<BitableShape> = {}): BitableTenant {
  return new BitableTenant(tenantKey, { ...defaultBitableShape, ...shape }, now);
}
