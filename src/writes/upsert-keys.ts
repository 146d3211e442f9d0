/**
 * Which records of a table hold a value in the field that upserts match on, as one job knows it.
 *
 * Two ways to know, chosen per job, table and field by what is cheaper upstream:
 * - `scan`: the whole field known at once: from what larksync holds when that is complete
 *   (known-keys.ts), else read once (records/search, 500 a page, field_names = the field) when
 *   that takes fewer calls than searching the values of the pending upserts 50 at a time
 *   (records/search takes at most 50 conditions);
 * - `search`: each value looked up when its upsert is planned (`is` conditions, `or`).
 * Either way, what this job's own write calls did since is learnt as they are answered (records
 * created with a value, values changed by updates, records deleted), so the next upsert sees the
 * record the previous one created, whatever Lark's search shows yet.
 *
 * Values compare as text: a cell's text segments joined, numbers as written (`cellText`), and the
 * match value as given (`String(value)`).
 */
export class KeyIndex {
  /**
   * value -> the record id known to hold it now, or the ids when more than one does: a key
   * usually names one record, and a Set for each of a table's 100,000 values was most of the
   * time an upsert job spent before its first call (the index is built whole, from base_records).
   */
  private readonly byValue = new Map<string, string | Set<string>>();
  /** record id -> its value now, for the records this index has seen or learnt */
  private readonly values = new Map<string, string>();
  /** records deleted by this job's calls */
  private readonly deleted = new Set<string>();

  constructor(
    readonly tableId: string,
    readonly field: string,
    readonly mode: 'scan' | 'search',
  ) {}

  /** A scan-mode index of what larksync holds (known-keys.ts): record id -> its text, undefined when it has none. */
  static fromKnown(tableId: string, field: string, known: ReadonlyMap<string, string | undefined>): KeyIndex {
    const index = new KeyIndex(tableId, field, 'scan');
    // learn() without its checks: every record comes once, with nothing learnt before it.
    for (const [recordId, value] of known) {
      if (value === undefined) continue;
      index.values.set(recordId, value);
      const held = index.byValue.get(value);
      if (held === undefined) index.byValue.set(value, recordId);
      else if (typeof held === 'string') index.byValue.set(value, new Set([held, recordId]));
      else held.add(recordId);
    }
    return index;
  }

  /** A record holds `value` (from the scan, or a create or update of this job). */
  learn(recordId: string, value: string): void {
    const before = this.values.get(recordId);
    if (before !== undefined && before !== value) this.drop(before, recordId);
    this.values.set(recordId, value);
    const held = this.byValue.get(value);
    if (held === undefined) this.byValue.set(value, recordId);
    else if (typeof held === 'string') {
      if (held !== recordId) this.byValue.set(value, new Set([held, recordId]));
    } else held.add(recordId);
    this.deleted.delete(recordId);
  }

  private drop(value: string, recordId: string): void {
    const held = this.byValue.get(value);
    if (held === recordId) this.byValue.delete(value);
    else if (typeof held === 'object') held.delete(recordId);
  }

  private holders(value: string): string[] {
    const held = this.byValue.get(value);
    return held === undefined ? [] : typeof held === 'string' ? [held] : [...held];
  }

  /** The value a record holds as far as this index knows (undefined: not known). */
  valueHeldBy(recordId: string): string | undefined {
    return this.values.get(recordId);
  }

  forget(recordId: string): void {
    const before = this.values.get(recordId);
    if (before !== undefined) this.drop(before, recordId);
    this.values.delete(recordId);
    this.deleted.add(recordId);
  }

  /**
   * The records holding `value`: in scan mode what the index holds; in search mode what the search
   * found, less records this job deleted or moved to another value, plus those it gave this value.
   */
  lookup(value: string, found: readonly string[] = []): string[] {
    const out = new Set(this.holders(value));
    if (this.mode === 'search') {
      for (const id of found) {
        const now = this.values.get(id);
        if (this.deleted.has(id) || (now !== undefined && now !== value)) continue;
        out.add(id);
      }
    }
    return [...out];
  }
}

/** A cell's text, as `is` compares it: text segments joined, numbers as written. */
export function cellText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? x : typeof x === 'object' && x !== null ? String((x as { text?: unknown }).text ?? '') : String(x))).join('');
  if (typeof v === 'object' && v !== null && 'value' in v) return cellText((v as { value: unknown }).value);
  return undefined;
}

/**
 * The key text a write body gives a field: a string or number as written; undefined when the
 * body leaves the field out (an update then keeps the record's value) and null when the value
 * has no text to match on (an array of options, a link: such a field cannot be an upsert key).
 */
export function writtenKey(fields: Record<string, unknown> | undefined, field: string): string | null | undefined {
  if (!fields || !(field in fields)) return undefined;
  const v = fields[field];
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return '';
  return null;
}
