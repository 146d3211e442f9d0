import type { FastifyInstance, FastifyReply } from 'fastify';
import { admit, decodePageToken, encodePageToken, larkReply, ok, seededRandom, type DataApiContext } from './support.js';

/**
 * Base (bitable v1) and wiki get_node for the simulator (../shared/lark/bitable.md, docs-wiki.md §2.3).
 *
 * Every table is virtual: record i is computed from a seed when asked for, and only edits,
 * additions and deletions are stored, so a table of a million records costs nothing until read.
 * Listing order is the record index (creation order); page tokens carry an offset into the
 * current listing, so a deletion between pages shifts later records back by one, as offset
 * paging does.
 *
 * Dates: the simulated bases are in UTC+8 (Asia/Shanghai, no DST), the common default for a Feishu
 * base. `ExactDate` values and the "Today"/"Yesterday"/"Tomorrow" keywords compare whole days in
 * that zone.
 */

export interface SimBitableField {
  field_id: string;
  field_name: string;
  type: number;
  ui_type: string;
  is_primary: boolean;
  property?: Record<string, unknown>;
}

export interface SimBitablePerson {
  id: string;
  name: string;
  en_name: string;
  email: string;
}

export interface SimBitableRecord {
  record_id: string;
  fields: Record<string, unknown>;
  created_by: SimBitablePerson;
  created_time: number;
  last_modified_by: SimBitablePerson;
  last_modified_time: number;
}

export interface SimBitableView {
  view_id: string;
  view_name: string;
  /** Records the view shows; absent = all. */
  shows?: (r: SimBitableRecord) => boolean;
}

/** Field type codes (bitable.md §3). */
export const FieldType = {
  Text: 1,
  Number: 2,
  SingleSelect: 3,
  MultiSelect: 4,
  DateTime: 5,
  Checkbox: 7,
  User: 11,
  Phone: 13,
  Url: 15,
  Attachment: 17,
  SingleLink: 18,
  Lookup: 19,
  Formula: 20,
  CreatedTime: 1001,
  ModifiedTime: 1002,
} as const;

const DATE_TYPES: ReadonlySet<number> = new Set([FieldType.DateTime, FieldType.CreatedTime, FieldType.ModifiedTime]);
const UNFILTERABLE_TYPES: ReadonlySet<number> = new Set([FieldType.Formula, FieldType.Lookup]);
const DAY_MS = 86_400_000;
/** The simulated bases' time zone (see the file comment). */
export const BASE_UTC_OFFSET_MS = 8 * 3_600_000;
/** Generated records were created and last modified before this instant (2025-01-01T00:00Z). */
export const GENERATED_BEFORE_MS = Date.UTC(2025, 0, 1);

/** Day number in the bases' time zone. */
export const baseDay = (ms: number) => Math.floor((ms + BASE_UTC_OFFSET_MS) / DAY_MS);

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function token(seed: string, length: number): string {
  const rnd = seededRandom(seed);
  let out = '';
  for (let i = 0; i < length; i += 1) out += ALNUM[Math.floor(rnd() * ALNUM.length)] ?? 'A';
  return out;
}

type Generator = (index: number, recordId: string) => Omit<SimBitableRecord, 'record_id'>;

/**
 * One table. Record i (0-based) is `generate(i)` unless edited (stored in `stored`) or deleted;
 * records added later continue the numbering.
 */
export class SimTable {
  private readonly stored = new Map<number, SimBitableRecord>();
  /** deleted indices, ascending (few: tests delete a handful) */
  private readonly deleted: number[] = [];
  private readonly deletedSet = new Set<number>();
  private size: number;
  /** Bumped on every change; cached scans of older versions are dropped. */
  private version = 0;
  private readonly scans = new Map<string, { version: number; indices: Int32Array }>();
  /** Added to every `total` reported (an upstream that over-counts: tests of incomplete listings). */
  totalSkew = 0;

  constructor(
    readonly table_id: string,
    readonly name: string,
    /** `rec` + this letter + the index in base 36: unique within the base, as Lark's are. */
    private readonly tag: string,
    readonly fields: SimBitableField[],
    readonly views: SimBitableView[],
    generated: number,
    private readonly generate: Generator,
    private readonly now: () => number,
  ) {
    this.size = generated;
  }

  /** Records currently in the table. */
  get count(): number {
    return this.size - this.deleted.length;
  }

  recordId(index: number): string {
    return `rec${this.tag}${index.toString(36).padStart(7, '0')}`;
  }

  private indexOf(recordId: string): number | undefined {
    const prefix = `rec${this.tag}`;
    if (!recordId.startsWith(prefix)) return undefined;
    const i = parseInt(recordId.slice(prefix.length), 36);
    return Number.isInteger(i) && i >= 0 && i < this.size && this.recordId(i) === recordId && !this.deletedSet.has(i) ? i : undefined;
  }

  private at(index: number): SimBitableRecord | undefined {
    if (index < 0 || index >= this.size || this.deletedSet.has(index)) return undefined;
    const stored = this.stored.get(index);
    if (stored) return stored;
    const id = this.recordId(index);
    return { record_id: id, ...this.generate(index, id) };
  }

  get(recordId: string): SimBitableRecord | undefined {
    const i = this.indexOf(recordId);
    return i === undefined ? undefined : this.at(i);
  }

  /** The record at a position of the unfiltered listing (deleted records skipped). */
  nth(position: number): SimBitableRecord | undefined {
    return this.at(this.underlying(position));
  }

  private underlying(position: number): number {
    let u = position;
    for (const d of this.deleted) {
      if (d <= u) u += 1;
      else break;
    }
    return u;
  }

  /** A ModifiedTime field shows the record's last modified time. */
  private stampModified(fields: Record<string, unknown>, at: number): void {
    for (const f of this.fields) {
      if (f.type === FieldType.ModifiedTime) fields[f.field_name] = at;
    }
  }

  /** Changes cells (null/undefined clears one) and bumps the modified time, as an edit in the UI does. */
  edit(recordId: string, patch: Record<string, unknown> = {}, by?: SimBitablePerson): SimBitableRecord {
    const i = this.indexOf(recordId);
    const current = i === undefined ? undefined : this.at(i);
    if (i === undefined || !current) throw new Error(`simulator: no record ${recordId} in ${this.table_id}`);
    const fields = structuredClone(current.fields);
    for (const [k, v] of Object.entries(patch)) {
      if (v === null || v === undefined) delete fields[k];
      else fields[k] = v;
    }
    // Lark's modified time has millisecond resolution; keep edits strictly increasing so a test
    // that edits twice in one millisecond still sees the second one as newer.
    const at = Math.max(this.now(), current.last_modified_time + 1);
    const editor = by ?? current.last_modified_by;
    this.stampModified(fields, at);
    const next = { ...current, fields, last_modified_time: at, last_modified_by: editor };
    this.stored.set(i, next);
    this.version += 1;
    return next;
  }

  delete(recordId: string): void {
    const i = this.indexOf(recordId);
    if (i === undefined) throw new Error(`simulator: no record ${recordId} in ${this.table_id}`);
    this.stored.delete(i);
    this.deletedSet.add(i);
    const at = this.deleted.findIndex((d) => d > i);
    if (at === -1) this.deleted.push(i);
    else this.deleted.splice(at, 0, i);
    this.version += 1;
  }

  /**
   * Appends records: `n` generated ones, or the given cells. Either way they are created and
   * modified now.
   */
  add(records: number | Array<Record<string, unknown>>): SimBitableRecord[] {
    const list = typeof records === 'number' ? Array.from({ length: records }, () => undefined) : records;
    const out: SimBitableRecord[] = [];
    for (const cells of list) {
      const i = this.size;
      const id = this.recordId(i);
      const base = this.generate(i, id);
      const at = this.now();
      const fields = cells ? structuredClone(cells) : base.fields;
      for (const f of this.fields) if (f.type === FieldType.CreatedTime) fields[f.field_name] = at;
      this.stampModified(fields, at);
      const rec: SimBitableRecord = { ...base, record_id: id, fields, created_time: at, last_modified_time: at };
      this.stored.set(i, rec);
      this.size += 1;
      out.push(rec);
    }
    this.version += 1;
    return out;
  }

  /**
   * Underlying indices matching a predicate, optionally sorted; cached per query until the data
   * changes, so paging through a filtered million-record table scans it once.
   */
  scan(key: string, keep: ((r: SimBitableRecord) => boolean) | undefined, sort: SortSpec[] | undefined): Int32Array {
    const cached = this.scans.get(key);
    if (cached && cached.version === this.version) return cached.indices;
    const picked: number[] = [];
    // One column per sort key; numbers (dates included) go to a typed array, the common case.
    const columns = (sort ?? []).map(() => [] as unknown[]);
    for (let u = 0; u < this.size; u += 1) {
      const r = this.at(u);
      if (!r || (keep && !keep(r))) continue;
      picked.push(u);
      sort?.forEach((s, k) => columns[k]?.push(sortValue(r.fields[s.field_name])));
    }
    let order = picked.map((_, i) => i);
    if (sort) {
      const keyed = columns.map((col) =>
        col.every((v) => v === undefined || typeof v === 'number')
          ? Float64Array.from(col, (v) => (v === undefined ? -Infinity : (v as number)))
          : col,
      );
      order = order.sort((a, b) => {
        for (let k = 0; k < keyed.length; k += 1) {
          const col = keyed[k]!;
          const c = col instanceof Float64Array ? (col[a] ?? 0) - (col[b] ?? 0) || 0 : compareValues(col[a], col[b]);
          if (c !== 0) return sort[k]?.desc ? -c : c;
        }
        return a - b;
      });
    }
    const indices = Int32Array.from(order, (i) => picked[i] ?? 0);
    if (this.scans.size > 8) this.scans.clear();
    this.scans.set(key, { version: this.version, indices });
    return indices;
  }

  /** One page of a listing: all records in order when `indices` is undefined. */
  page(indices: Int32Array | undefined, offset: number, size: number): { records: SimBitableRecord[]; matched: number } {
    const matched = indices ? indices.length : this.count;
    const records: SimBitableRecord[] = [];
    for (let p = offset; p < Math.min(matched, offset + size); p += 1) {
      const r = indices ? this.at(indices[p] ?? -1) : this.nth(p);
      if (r) records.push(r);
    }
    return { records, matched };
  }
}

export interface SortSpec {
  field_name: string;
  desc?: boolean;
}

function textOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) {
    return v
      .map((x) => {
        if (typeof x === 'string') return x;
        if (typeof x !== 'object' || !x) return String(x);
        const part = x as { text?: unknown; name?: unknown };
        return String(part.text ?? part.name ?? '');
      })
      .join('');
  }
  if (v && typeof v === 'object' && 'text' in v) return String((v as { text: unknown }).text);
  return undefined;
}

function sortValue(v: unknown): unknown {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' || typeof v === 'boolean') return Number(v);
  if (v && typeof v === 'object' && 'value' in v && Array.isArray((v as { value: unknown }).value)) {
    return sortValue((v as { value: unknown[] }).value[0]);
  }
  return textOf(v);
}

/** Empty cells first (ascending), then numbers, then text. */
function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === undefined) return -1;
  if (b === undefined) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
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
}

export const defaultBitableShape: BitableShape = { projects: 1234, ledger: 640, tasks: 25, events: 1_000_000 };

export interface BitableRequest {
  api: 'fields' | 'search';
  appToken: string;
  tableId: string;
  query: Record<string, string | undefined>;
  body: unknown;
  at: number;
}

/** Ids of the generated bases, for tests and benchmarks. */
export interface BitableRefs {
  main: { appToken: string; projects: string; ledger: string; openView: string; allView: string };
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
  /** Every fields / search request this tenant received, in order (query and body included). */
  readonly requests: BitableRequest[] = [];
  private throttles = 0;

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

    for (const b of [main, wiki, big]) this.bases.set(b.app_token, b);

    const space = String(7_000_000_000_000_000_000n + BigInt(Math.floor(seededRandom(`space:${tenantKey}`)() * 1e15)));
    const wikiNode = `wikcn${t('node:base', 22)}`;
    const docNode = `wikcn${t('node:doc', 22)}`;
    this.nodes.set(wikiNode, { space_id: space, node_token: wikiNode, obj_token: wiki.app_token, obj_type: 'bitable', title: 'Team tasks' });
    this.nodes.set(docNode, { space_id: space, node_token: docNode, obj_token: `doxcn${t('doc:handbook', 22)}`, obj_type: 'docx', title: 'Handbook' });

    this.refs = {
      main: { appToken: main.app_token, projects: projects.table_id, ledger: ledger.table_id, openView, allView },
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

  /** Search requests to one table, in order (for assertions on page_size, filter, view). */
  searches(appToken: string, tableId: string): BitableRequest[] {
    return this.requests.filter((r) => r.api === 'search' && r.appToken === appToken && r.tableId === tableId);
  }
}

// ---------------------------------------------------------------- filters

interface Condition {
  field_name?: unknown;
  operator?: unknown;
  value?: unknown;
}
interface FilterGroup {
  conjunction?: unknown;
  conditions?: unknown;
  children?: unknown;
}

type Predicate = (r: SimBitableRecord) => boolean;
class FilterError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A date condition's value as a day number in the base's zone (bitable.md §2.4). */
function dayOf(value: string[], now: number): number {
  const [kind, ms] = value;
  if (kind === 'ExactDate') {
    const n = Number(ms);
    if (ms === undefined || ms === '' || !Number.isFinite(n)) throw new FilterError(1254018, 'InvalidFilter: ExactDate needs a millisecond timestamp');
    return baseDay(n);
  }
  if (kind === 'Today') return baseDay(now);
  if (kind === 'Yesterday') return baseDay(now) - 1;
  if (kind === 'Tomorrow') return baseDay(now) + 1;
  throw new FilterError(1254018, `InvalidFilter: date value ${String(kind)} is not supported by the simulator`);
}

function compileCondition(table: SimTable, c: Condition, now: number): Predicate {
  const name = typeof c.field_name === 'string' ? c.field_name : '';
  const field = table.fields.find((f) => f.field_name === name);
  if (!field) throw new FilterError(1254045, `FieldNameNotFound: ${name}`);
  if (UNFILTERABLE_TYPES.has(field.type)) throw new FilterError(1254018, `InvalidFilter: ${name} is a formula or lookup field`);
  const op = typeof c.operator === 'string' ? c.operator : '';
  if (!Array.isArray(c.value) || c.value.some((v) => typeof v !== 'string') || c.value.length > 10) {
    throw new FilterError(1254018, 'InvalidFilter: value must be an array of at most 10 strings');
  }
  const value = c.value as string[];
  const cell = (r: SimBitableRecord) => r.fields[name];
  const empty = (v: unknown) => v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
  if (op === 'isEmpty') return (r) => empty(cell(r));
  if (op === 'isNotEmpty') return (r) => !empty(cell(r));
  if (DATE_TYPES.has(field.type)) {
    if (!['is', 'isGreater', 'isLess'].includes(op)) throw new FilterError(1254018, `InvalidFilter: operator ${op} is not supported on date fields`);
    const day = dayOf(value, now);
    return (r) => {
      const v = cell(r);
      if (typeof v !== 'number') return false;
      const d = baseDay(v);
      return op === 'is' ? d === day : op === 'isGreater' ? d > day : d < day;
    };
  }
  const first = value[0] ?? '';
  switch (op) {
    case 'is':
    case 'isNot': {
      const match = (v: unknown) => {
        if (field.type === FieldType.Checkbox) return (v === true) === (first === 'true');
        if (field.type === FieldType.Number) return typeof v === 'number' && v === Number(first);
        if (Array.isArray(v) && field.type !== FieldType.Text) return v.some((x) => (typeof x === 'object' && x ? (x as { id?: unknown }).id === first : x === first));
        return textOf(v) === first;
      };
      return op === 'is' ? (r) => match(cell(r)) : (r) => !match(cell(r));
    }
    case 'contains':
    case 'doesNotContain': {
      const has = (v: unknown) => value.some((x) => (Array.isArray(v) && field.type !== FieldType.Text ? v.includes(x) : (textOf(v) ?? '').includes(x)));
      return op === 'contains' ? (r) => has(cell(r)) : (r) => !has(cell(r));
    }
    case 'isGreater':
    case 'isGreaterEqual':
    case 'isLess':
    case 'isLessEqual': {
      const bound = Number(first);
      return (r) => {
        const v = cell(r);
        if (typeof v !== 'number') return false;
        return op === 'isGreater' ? v > bound : op === 'isGreaterEqual' ? v >= bound : op === 'isLess' ? v < bound : v <= bound;
      };
    }
    default:
      throw new FilterError(1254018, `InvalidFilter: operator ${op} is not supported`);
  }
}

function compileGroup(table: SimTable, g: FilterGroup, now: number, depth: number): Predicate {
  const conj = g.conjunction;
  if (conj !== 'and' && conj !== 'or') throw new FilterError(1254018, 'InvalidFilter: conjunction must be "and" or "or"');
  const conditions = Array.isArray(g.conditions) ? (g.conditions as Condition[]) : [];
  if (conditions.length > 50) throw new FilterError(1254018, 'InvalidFilter: at most 50 conditions');
  const children = Array.isArray(g.children) ? (g.children as FilterGroup[]) : [];
  if (children.length > 0 && depth > 0) throw new FilterError(1254018, 'InvalidFilter: only one level of children');
  const parts = [...conditions.map((c) => compileCondition(table, c, now)), ...children.map((c) => compileGroup(table, c, now, depth + 1))];
  if (parts.length === 0) return () => true;
  return conj === 'and' ? (r) => parts.every((p) => p(r)) : (r) => parts.some((p) => p(r));
}

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

/** A tenant's Base data, created on first use. */
export function createBitableTenant(tenantKey: string, now: () => number, shape: Partial<BitableShape> = {}): BitableTenant {
  return new BitableTenant(tenantKey, { ...defaultBitableShape, ...shape }, now);
}
