import type { WriteRecordError } from './writes.table.js';

/** A field of the table, as Lark lists it (bitable.md §2.3). */
export interface TableField {
  field_name: string;
  type: number;
  ui_type?: string;
  property?: { options?: Array<{ name?: string }> } | null;
}

/** Attachment values to upload first: from a URL, or inline bytes. */
export type AttachmentSource = { url: string } | { base64: string; name: string };

export interface Converted {
  fields: Record<string, unknown>;
  /** attachment inputs to upload, by field name (their file tokens then replace them) */
  uploads: Array<{ field: string; sources: AttachmentSource[]; keep: Array<{ file_token: string }> }>;
  warnings: string[];
}

/** Read-only on write (bitable-writes.md §6.3): formula, lookup, created/modified time and by, auto number, flow, button. */
const READ_ONLY: ReadonlyMap<number, string> = new Map([
  [19, 'a lookup'],
  [20, 'a formula'],
  [1001, 'a created-time'],
  [1002, 'a modified-time'],
  [1003, 'a created-by'],
  [1004, 'a modified-by'],
  [1005, 'an auto-number'],
  [24, 'a flow'],
  [3001, 'a button'],
]);

/**
 * A Base's time zone when a date carries no offset. larksync does not read it from Lark (the app
 * metadata's time zone field is not in the notes, unconfirmed); UTC+8 (Asia/Shanghai), a Feishu
 * Base's usual default, is assumed. Give an offset (or epoch milliseconds) to be exact.
 */
export const DEFAULT_BASE_UTC_OFFSET_MINUTES = 8 * 60;

class Invalid extends Error {
  constructor(
    readonly field: string,
    message: string,
    readonly code = 'invalid_value',
  ) {
    super(message);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** ISO 8601 (offset optional: then the Base's zone), a date alone, or epoch ms. */
export function toEpochMs(v: unknown, field: string, utcOffsetMinutes = DEFAULT_BASE_UTC_OFFSET_MINUTES): number {
  if (typeof v === 'number' && Number.isFinite(v)) return Math.trunc(v);
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^\d{10,13}$/.test(s)) return Number(s.length === 10 ? `${s}000` : s);
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(s);
    if (m) {
      const [, y, mo, d, h = '0', mi = '0', sec = '0', ms = '0', zone] = m;
      const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), Number(ms.padEnd(3, '0')));
      let offset = utcOffsetMinutes;
      if (zone === 'Z') offset = 0;
      else if (zone) {
        const sign = zone.startsWith('-') ? -1 : 1;
        const digits = zone.slice(1).replace(':', '');
        offset = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2)));
      }
      const at = utc - offset * 60_000;
      if (Number.isFinite(at)) return at;
    }
  }
  throw new Invalid(field, `${field}: expects a date: epoch milliseconds or ISO 8601 like "2026-12-06" or "2026-12-06T09:30:00+08:00" (no offset: the Base's zone, UTC+8)`);
}

function text(v: unknown, field: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Invalid(field, `${field}: expects text (a string)`);
}

function ids(v: unknown, field: string, prefix: string, what: string): Array<{ id: string }> {
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => {
    const id = typeof x === 'string' ? x : isRecord(x) && typeof x.id === 'string' ? x.id : undefined;
    if (!id || !id.startsWith(prefix)) throw new Invalid(field, `${field}: expects ${what} ("${prefix}…", a list of them, or [{ "id": "${prefix}…" }])`);
    return { id };
  });
}

/**
 * Checks and converts one record's fields against the table's schema, before anything is sent:
 * an unknown field name, a read-only field or a value of the wrong shape is refused with the field
 * named and the expected shape in the message; obvious inputs are converted to what Lark wants
 * (bitable-writes.md §6.3): dates to milliseconds, people from open_ids, links from record ids,
 * URLs from strings. Unknown select options are passed on (Lark creates them) with a warning.
 */
export function convertFields(input: Record<string, unknown>, schema: ReadonlyMap<string, TableField>, utcOffsetMinutes?: number): { ok: Converted } | { error: WriteRecordError } {
  const out: Converted = { fields: {}, uploads: [], warnings: [] };
  try {
    for (const [name, value] of Object.entries(input)) {
      const f = schema.get(name);
      if (!f) {
        const known = [...schema.keys()].slice(0, 20).join(', ');
        throw new Invalid(name, `no field "${name}" in this table (names are exact, case included); its fields: ${known}${schema.size > 20 ? ', …' : ''}`, 'unknown_field');
      }
      const ro = READ_ONLY.get(f.type);
      if (ro) throw new Invalid(name, `${name} is ${ro} field, which Lark computes: leave it out`, 'read_only_field');
      // null clears a cell.
      if (value === null) {
        out.fields[name] = null;
        continue;
      }
      out.fields[name] = convertValue(f, value, name, out, utcOffsetMinutes);
    }
    return { ok: out };
  } catch (err) {
    if (err instanceof Invalid) return { error: { code: err.code, message: err.message, field: err.field } };
    throw err;
  }
}

function convertValue(f: TableField, v: unknown, name: string, out: Converted, utcOffsetMinutes: number | undefined): unknown {
  switch (f.type) {
    case 1: // text (also barcode, email)
    case 13: // phone
      return text(v, name);
    case 2: {
      const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new Invalid(name, `${name}: expects a number`);
      return n;
    }
    case 3: {
      const s = text(v, name);
      noteNewOptions(f, [s], name, out);
      return s;
    }
    case 4: {
      const list = (Array.isArray(v) ? v : [v]).map((x) => text(x, name));
      noteNewOptions(f, list, name, out);
      return list;
    }
    case 5:
      return toEpochMs(v, name, utcOffsetMinutes);
    case 7:
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === 'false') return v === 'true';
      throw new Invalid(name, `${name}: expects true or false`);
    case 11:
      return ids(v, name, 'ou_', "a person's open_id");
    case 23:
      return ids(v, name, 'oc_', 'a group chat id');
    case 15: {
      if (typeof v === 'string') return { text: v, link: v };
      if (isRecord(v) && typeof v.link === 'string') return { text: typeof v.text === 'string' ? v.text : v.link, link: v.link };
      throw new Invalid(name, `${name}: expects a URL string or { "text", "link" }`);
    }
    case 18:
    case 21: {
      const list = Array.isArray(v) ? v : [v];
      if (!list.every((x) => typeof x === 'string' && /^rec[A-Za-z0-9]+$/.test(x))) throw new Invalid(name, `${name}: expects record ids ("rec…" or a list of them)`);
      return list;
    }
    case 22:
      if (typeof v === 'string' && /^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/.test(v)) return v;
      throw new Invalid(name, `${name}: expects a location "longitude,latitude"`);
    case 17: {
      const list = Array.isArray(v) ? v : [v];
      const keep: Array<{ file_token: string }> = [];
      const sources: AttachmentSource[] = [];
      for (const x of list) {
        if (isRecord(x) && typeof x.file_token === 'string') keep.push({ file_token: x.file_token });
        else if (isRecord(x) && typeof x.url === 'string' && /^https:\/\//.test(x.url)) sources.push({ url: x.url });
        else if (isRecord(x) && typeof x.base64 === 'string' && typeof x.name === 'string' && x.name.length > 0) sources.push({ base64: x.base64, name: x.name });
        else throw new Invalid(name, `${name}: expects attachments: { "url": "https://…" }, { "base64": "…", "name": "file.pdf" } or { "file_token" } (a list of them)`);
      }
      if (sources.length > 0) out.uploads.push({ field: name, sources, keep });
      return keep;
    }
    default:
      // A type this code does not know: passed as given, Lark judges it.
      return v;
  }
}

function noteNewOptions(f: TableField, names: string[], field: string, out: Converted): void {
  const known = new Set((f.property?.options ?? []).map((o) => o.name));
  for (const n of names) {
    if (!known.has(n)) out.warnings.push(`${field}: option "${n.slice(0, 100)}" does not exist yet; Lark creates it`);
  }
}
