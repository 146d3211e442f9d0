/**
 * A Base table as the simulator keeps it (../shared/lark/bitable.md): fields, views, and records
 * that are virtual. Record i is computed from a seed when asked for, and only edits, additions
 * and deletions are stored, so a table of a million records costs nothing until read. Listing
 * order is the record index (creation order); page tokens carry an offset into the current
 * listing, so a deletion between pages shifts later records back by one, as offset paging does.
 *
 * Dates: the simulated bases are in UTC+8 (Asia/Shanghai, no DST), the common default for a Feishu
 * base. `ExactDate` values and the "Today"/"Yesterday"/"Tomorrow" keywords compare whole days in
 * that zone (filter.ts).
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
  DuplexLink: 21,
  Location: 22,
  GroupChat: 23,
  Flow: 24,
  CreatedTime: 1001,
  ModifiedTime: 1002,
  CreatedUser: 1003,
  ModifiedUser: 1004,
  AutoNumber: 1005,
  Button: 3001,
} as const;

/**
 * Field types the API cannot write (bitable-writes.md §6.3): formula, lookup, created/modified
 * time, created/modified by, auto number, flow and button.
 */
export const READ_ONLY_FIELD_TYPES: ReadonlySet<number> = new Set([
  FieldType.Lookup,
  FieldType.Formula,
  FieldType.Flow,
  FieldType.CreatedTime,
  FieldType.ModifiedTime,
  FieldType.CreatedUser,
  FieldType.ModifiedUser,
  FieldType.AutoNumber,
  FieldType.Button,
]);

export const DAY_MS = 86_400_000;
/** The simulated bases' time zone (see the file comment). */
export const BASE_UTC_OFFSET_MS = 8 * 3_600_000;
/** Generated records were created and last modified before this instant (2025-01-01T00:00Z). */
export const GENERATED_BEFORE_MS = Date.UTC(2025, 0, 1);

/** Day number in the bases' time zone. */
export const baseDay = (ms: number) => Math.floor((ms + BASE_UTC_OFFSET_MS) / DAY_MS);

/** One record's change, as `drive.file.bitable_record_changed_v1` reports it (events/payloads.ts). */
export interface RecordChange {
  action: 'record_added' | 'record_deleted' | 'record_edited';
  record_id: string;
  /** The record before (edits, deletions). */
  before?: SimBitableRecord;
  /** The record after (additions, edits). */
  after?: SimBitableRecord;
}

/** One field's change, as `drive.file.bitable_field_changed_v1` reports it. */
export interface FieldChange {
  action: 'field_added' | 'field_edited' | 'field_deleted';
  field_id: string;
  before?: SimBitableField;
  after?: SimBitableField;
}

/** The changes of one call (a write API call, a test edit), with the table's revision after it. */
export interface TableChangeSet {
  records: RecordChange[];
  fields: FieldChange[];
  /** Who made them (absent: unknown, e.g. a deletion by a test). */
  by: SimBitablePerson | undefined;
  /** ms, the table's clock */
  at: number;
  revision: number;
}

/** Record i of a table as generated (the record id is given so generators can link records). */
export type Generator = (index: number, recordId: string) => Omit<SimBitableRecord, 'record_id'>;

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
  /**
   * Records the caller may not read under advanced permissions (bitable.md §2.6, §4): batch_get
   * lists these ids in `forbidden_record_ids`, records/search leaves them out of its results and
   * its total. Tests may change it at any time, between pages included.
   */
  forbiddenRecords = new Set<string>();
  /**
   * Advanced permissions on and no manage right: batch_get succeeds with empty data (no records,
   * no absent or forbidden ids), as bitable.md §2.6 warns it can.
   */
  silentBatchGet = false;
  /**
   * The app may not read this table: fields, records/search and batch_get answer HTTP 403 with
   * code 91403 (routes.ts).
   */
  denied = false;
  /**
   * A table only the named users may read (open ids): with a tenant token it answers 91403 as
   * `denied` does, with a listed user's access token normally, with anyone else's 91403. Absent =
   * no per-user restriction.
   */
  readers: Set<string> | undefined = undefined;
  /**
   * The app (or user) may read but not edit this table: record writes answer HTTP 403 with code
   * 91403, as a table it may not read does (write-routes.ts). Lark's exact answer for a caller
   * without edit permission is not in the notes ("HTTP 403/400"): unconfirmed.
   */
  writeDenied = false;
  /**
   * Recomputes the derived cells of a record (formula, lookup) after an edit or an addition, as
   * Lark does; generators call it too so generated and written records agree. Absent = none.
   */
  derive: ((fields: Record<string, unknown>) => void) | undefined = undefined;
  /** Told of every change (SimData turns them into Base change events). */
  onChange: ((changes: TableChangeSet) => void) | undefined = undefined;
  private pendingChanges: TableChangeSet | undefined;
  private batchDepth = 0;
  /** Field renames (old name -> current name) and deletions, applied to records as they are read. */
  private readonly renamedFields = new Map<string, string>();
  private readonly droppedFields = new Set<string>();

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
    if (stored) return this.fieldView(stored);
    const id = this.recordId(index);
    return this.fieldView({ record_id: id, ...this.generate(index, id) });
  }

  /** The record under the current field names (after renameField/deleteField; as is otherwise). */
  private fieldView(r: SimBitableRecord): SimBitableRecord {
    if (this.renamedFields.size === 0 && this.droppedFields.size === 0) return r;
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r.fields)) {
      if (this.droppedFields.has(k)) continue;
      fields[this.renamedFields.get(k) ?? k] = v;
    }
    return { ...r, fields };
  }

  /** The table's revision: it grows with every change (records and fields). */
  get revision(): number {
    return this.version + 1;
  }

  /**
   * Runs `fn` and reports the changes it makes as one set (one write API call = one change set;
   * without it every edit/add/delete call reports its own).
   */
  batch<T>(fn: () => T, by?: SimBitablePerson): T {
    this.batchDepth += 1;
    if (this.batchDepth === 1) this.pendingChanges = { records: [], fields: [], by, at: this.now(), revision: this.revision };
    try {
      return fn();
    } finally {
      this.batchDepth -= 1;
      if (this.batchDepth === 0) {
        const set = this.pendingChanges;
        this.pendingChanges = undefined;
        if (set && set.records.length + set.fields.length > 0) this.onChange?.({ ...set, revision: this.revision });
      }
    }
  }

  private report(change: { record?: RecordChange; field?: FieldChange }, by: SimBitablePerson | undefined): void {
    if (!this.onChange) return;
    if (this.pendingChanges) {
      if (change.record) this.pendingChanges.records.push(change.record);
      if (change.field) this.pendingChanges.fields.push(change.field);
      this.pendingChanges.by ??= by;
      return;
    }
    this.onChange({
      records: change.record ? [change.record] : [],
      fields: change.field ? [change.field] : [],
      by,
      at: this.now(),
      revision: this.revision,
    });
  }

  // ---------------------------------------------------------------- fields (test edits)

  /** Adds a field (`field_added`); `field_id` is generated unless given. */
  addField(field: Omit<SimBitableField, 'field_id' | 'is_primary'> & Partial<Pick<SimBitableField, 'field_id' | 'is_primary'>>, by?: SimBitablePerson): SimBitableField {
    if (this.fields.some((f) => f.field_name === field.field_name)) throw new Error(`simulator: field ${field.field_name} exists in ${this.table_id}`);
    const added: SimBitableField = { field_id: `fld${this.table_id.slice(3, 6)}${(this.fields.length + 1).toString(36).padStart(4, '0')}`, is_primary: false, ...field };
    this.fields.push(added);
    this.renamedFields.delete(added.field_name);
    this.droppedFields.delete(added.field_name);
    this.version += 1;
    this.report({ field: { action: 'field_added', field_id: added.field_id, after: structuredClone(added) } }, by);
    return added;
  }

  /** Changes a field: its name (records follow), type, ui_type or property (`field_edited`). */
  updateField(fieldId: string, patch: Partial<Omit<SimBitableField, 'field_id'>>, by?: SimBitablePerson): SimBitableField {
    const field = this.fields.find((f) => f.field_id === fieldId);
    if (!field) throw new Error(`simulator: no field ${fieldId} in ${this.table_id}`);
    const before = structuredClone(field);
    if (patch.field_name !== undefined && patch.field_name !== field.field_name) {
      const from = field.field_name;
      for (const [old, now] of this.renamedFields) if (now === from) this.renamedFields.set(old, patch.field_name);
      this.renamedFields.set(from, patch.field_name);
      this.droppedFields.delete(patch.field_name);
    }
    Object.assign(field, patch);
    this.version += 1;
    this.report({ field: { action: 'field_edited', field_id: fieldId, before, after: structuredClone(field) } }, by);
    return field;
  }

  /** Deletes a field and its cells (`field_deleted`). */
  deleteField(fieldId: string, by?: SimBitablePerson): void {
    const i = this.fields.findIndex((f) => f.field_id === fieldId);
    if (i < 0) throw new Error(`simulator: no field ${fieldId} in ${this.table_id}`);
    const [field] = this.fields.splice(i, 1);
    this.droppedFields.add(field!.field_name);
    for (const [old, now] of this.renamedFields) if (now === field!.field_name) this.droppedFields.add(old);
    this.version += 1;
    this.report({ field: { action: 'field_deleted', field_id: fieldId, before: structuredClone(field!) } }, by);
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

  /** A ModifiedTime field shows the record's last modified time, a ModifiedUser field its last editor. */
  private stampModified(fields: Record<string, unknown>, at: number, by?: SimBitablePerson): void {
    for (const f of this.fields) {
      if (f.type === FieldType.ModifiedTime) fields[f.field_name] = at;
      if (f.type === FieldType.ModifiedUser && by) fields[f.field_name] = [by];
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
    this.stampModified(fields, at, editor);
    this.derive?.(fields);
    const next = { ...current, fields, last_modified_time: at, last_modified_by: editor };
    this.stored.set(i, next);
    this.version += 1;
    this.report({ record: { action: 'record_edited', record_id: recordId, before: current, after: next } }, editor);
    return next;
  }

  /** Deletes a record (`by`: who did, for the change event). */
  delete(recordId: string, by?: SimBitablePerson): void {
    const i = this.indexOf(recordId);
    if (i === undefined) throw new Error(`simulator: no record ${recordId} in ${this.table_id}`);
    const before = this.onChange ? this.at(i) : undefined;
    this.stored.delete(i);
    this.deletedSet.add(i);
    const at = this.deleted.findIndex((d) => d > i);
    if (at === -1) this.deleted.push(i);
    else this.deleted.splice(at, 0, i);
    this.version += 1;
    this.report({ record: { action: 'record_deleted', record_id: recordId, ...(before ? { before } : {}) } }, by);
  }

  /**
   * Appends records: `n` generated ones, or the given cells. Either way they are created and
   * modified now, by `by` when given (an API write: the app or the user), else by the generated
   * record's people. Automatic cells (created/modified time and by, auto number) and derived
   * ones (`derive`) are filled in.
   */
  add(records: number | Array<Record<string, unknown>>, by?: SimBitablePerson): SimBitableRecord[] {
    const list = typeof records === 'number' ? Array.from({ length: records }, () => undefined) : records;
    const out: SimBitableRecord[] = [];
    for (const cells of list) {
      const i = this.size;
      const id = this.recordId(i);
      const base = this.generate(i, id);
      const at = this.now();
      const fields = cells ? structuredClone(cells) : base.fields;
      const creator = by ?? base.created_by;
      const editor = by ?? base.last_modified_by;
      for (const f of this.fields) {
        if (f.type === FieldType.CreatedTime) fields[f.field_name] = at;
        if (f.type === FieldType.CreatedUser) fields[f.field_name] = [creator];
        if (f.type === FieldType.AutoNumber) fields[f.field_name] = String(i + 1);
      }
      this.stampModified(fields, at, editor);
      if (cells) this.derive?.(fields);
      const rec: SimBitableRecord = {
        ...base,
        record_id: id,
        fields,
        created_by: creator,
        created_time: at,
        last_modified_by: editor,
        last_modified_time: at,
      };
      this.stored.set(i, rec);
      this.size += 1;
      out.push(rec);
    }
    this.version += 1;
    if (this.onChange) this.batch(() => {
      for (const rec of out) this.report({ record: { action: 'record_added', record_id: rec.record_id, after: rec } }, rec.created_by);
    }, by);
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

export function textOf(v: unknown): string | undefined {
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
