import { randomBytes } from 'node:crypto';
import { FieldType, READ_ONLY_FIELD_TYPES, type SimBitableField, type SimBitablePerson, type SimTable } from './table.js';

/**
 * Write values of Base records: the shapes create/update accept per field type
 * (../shared/lark/bitable-writes.md §6.3, bitable.md §3), their conversion into what reads return,
 * and Lark's error codes when a value does not fit (bitable.md §5):
 *
 * | type | accepted | stored (as read) | wrong shape |
 * |---|---|---|---|
 * | 1 text | string | `[{type: "text", text}]` (Email: `[{type: "url", text, link: "mailto:…"}]`) | 1254060 |
 * | 2 number | finite number | number | 1254061 |
 * | 3 single select | option name (new names add an option) | string | 1254062 |
 * | 4 multi select | option names (each new name adds an option, duplicates too) | string[] | 1254063 |
 * | 5 date | ms timestamp (number) | number | 1254064 |
 * | 7 checkbox | boolean (false clears: reads omit unchecked boxes) | true | 1254065 |
 * | 11 person | `[{id}]` in the call's user_id_type, people of the tenant | `[{id (open_id), name, en_name, email}]` | 1254066 |
 * | 13 phone | string matching `(\+)?\d*`, ≤ 64 chars | string | 1254072 |
 * | 15 url | `{text, link}` | `{text, link}` | 1254068 |
 * | 17 attachment | `[{file_token}]` uploaded to this Base | `[{file_token, name, type, size, url, tmp_url}]` | 1254069; a token not uploaded to this Base 1254303 |
 * | 18/21 link | record id strings | `{link_record_ids}` | 1254074 not a string array; unknown ids 1254067 |
 * | read-only (formula, lookup, created/modified time and by, auto number, flow, button) | — | — | 1254015 (HTTP 400) |
 *
 * `null` clears a cell (documented for person; the simulator allows it for every writable type).
 * Location, group and other types the simulator does not model are stored as given.
 */

export class WriteError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly status = 200,
  ) {
    super(message);
  }
}

/** Conversion failures per field type (bitable.md §5, in the order the notes list them). */
const CONV_FAIL: Record<number, [number, string]> = {
  [FieldType.Text]: [1254060, 'TextFieldConvFail'],
  [FieldType.Number]: [1254061, 'NumberFieldConvFail'],
  [FieldType.SingleSelect]: [1254062, 'SingleSelectFieldConvFail'],
  [FieldType.MultiSelect]: [1254063, 'MultiSelectFieldConvFail'],
  [FieldType.DateTime]: [1254064, 'DatetimeFieldConvFail'],
  [FieldType.Checkbox]: [1254065, 'CheckboxFieldConvFail'],
  [FieldType.User]: [1254066, 'UserFieldConvFail'],
  [FieldType.SingleLink]: [1254067, 'LinkFieldConvFail'],
  [FieldType.DuplexLink]: [1254067, 'LinkFieldConvFail'],
  [FieldType.Url]: [1254068, 'URLFieldConvFail'],
  [FieldType.Attachment]: [1254069, 'AttachFieldConvFail'],
  [FieldType.Phone]: [1254072, 'Failed to convert phone field, please make sure it is correct.'],
};

/** Per-cell limits (bitable.md §3). */
const TEXT_MAX = 100_000;
const MULTI_SELECT_MAX = 1_000;
const PEOPLE_MAX = 1_000;
const ATTACHMENTS_MAX = 100;
const LINKS_MAX = 500;
const PHONE = /^\+?\d*$/;

export interface SimMedia {
  file_token: string;
  /** The Base it was uploaded to (parent_node): usable there only. */
  appToken: string;
  name: string;
  /** MIME type */
  type: string;
  size: number;
  parentType: 'bitable_image' | 'bitable_file';
  uploadedAt: number;
}

export interface ValueContext {
  table: SimTable;
  /** Tables of the same Base, for link fields (property.table_id). */
  tableById: (tableId: string) => SimTable | undefined;
  /** A person of the tenant by an id of the call's user_id_type. */
  person: (id: string) => SimBitablePerson | undefined;
  /** A file uploaded to the call's Base (undefined for tokens of other Bases or unknown ones). */
  media: (fileToken: string) => SimMedia | undefined;
}

/** Select options a call adds, applied only when the whole call succeeds (all-or-nothing). */
export class PendingOptions {
  private readonly added = new Map<SimBitableField, string[]>();

  /** Whether the field has (or this call already added) an option of this name. */
  has(field: SimBitableField, name: string): boolean {
    const options = (field.property?.options as Array<{ name: string }> | undefined) ?? [];
    return options.some((o) => o.name === name) || (this.added.get(field)?.includes(name) ?? false);
  }

  add(field: SimBitableField, name: string): void {
    const list = this.added.get(field) ?? [];
    list.push(name);
    this.added.set(field, list);
  }

  /** Adds the options to the fields (ids `opt` + 7 random letters, colours continuing 0–54). */
  apply(): void {
    for (const [field, names] of this.added) {
      const property = (field.property ??= {});
      const options = ((property.options as Array<Record<string, unknown>> | undefined) ??= []);
      for (const name of names) {
        options.push({ name, id: `opt${randomAlnum(7)}`, color: options.length % 55 });
      }
    }
  }
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export function randomAlnum(n: number): string {
  const bytes = randomBytes(n);
  let out = '';
  for (let i = 0; i < n; i += 1) out += ALNUM[(bytes[i] ?? 0) % ALNUM.length];
  return out;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * The stored cells of one record's `fields` as written, or a WriteError. `null` in the result
 * means "clear this cell". New select options go to `pending`.
 */
export function convertFields(ctx: ValueContext, fields: Record<string, unknown>, where: string, pending: PendingOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    const field = ctx.table.fields.find((f) => f.field_name === name);
    if (!field) throw new WriteError(1254045, `FieldNameNotFound: ${JSON.stringify(name)} (${where})`);
    out[name] = convertValue(ctx, field, value, `${where}.fields[${JSON.stringify(name)}]`, pending);
  }
  return out;
}

function convertValue(ctx: ValueContext, field: SimBitableField, value: unknown, where: string, pending: PendingOptions): unknown {
  if (READ_ONLY_FIELD_TYPES.has(field.type)) {
    // The notes list these types as read-only on write without naming the answer; 1254015 "field
    // types do not match" (HTTP 400) is the documented code closest to it: unconfirmed.
    throw new WriteError(1254015, `Field types do not match: ${field.field_name} (type ${field.type}) is read-only (${where})`, 400);
  }
  if (value === null || value === undefined) return null;
  const conv = CONV_FAIL[field.type];
  const fail = (why: string): never => {
    if (!conv) throw new WriteError(1254010, `ReqConvError: ${why} (${where})`);
    throw new WriteError(conv[0], `${conv[1]}: ${why} (${where})`);
  };

  switch (field.type) {
    case FieldType.Text: {
      if (typeof value !== 'string') return fail('a text value is a plain string');
      if (value.length > TEXT_MAX) throw new WriteError(1254130, `TooLargeCell: more than ${TEXT_MAX} characters (${where})`);
      if (value === '') return null;
      if (field.ui_type === 'Email') return [{ type: 'url', text: value, link: `mailto:${value}` }];
      return [{ type: 'text', text: value }];
    }
    case FieldType.Number: {
      if (typeof value !== 'number' || !Number.isFinite(value)) return fail('a number value is a JSON number');
      return value;
    }
    case FieldType.SingleSelect: {
      if (typeof value !== 'string') return fail('a single select value is an option name');
      if (value === '') return null;
      if (!pending.has(field, value)) pending.add(field, value);
      return value;
    }
    case FieldType.MultiSelect: {
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v !== '')) return fail('a multi select value is an array of option names');
      if (value.length > MULTI_SELECT_MAX) return fail(`at most ${MULTI_SELECT_MAX} options per cell`);
      if (value.length === 0) return null;
      // Every new name adds an option, a name repeated in the cell once per repetition
      // (bitable-writes.md §6.3); names added earlier in the same call are reused.
      const before = new Set((value as string[]).filter((v) => pending.has(field, v)));
      for (const v of value as string[]) if (!before.has(v)) pending.add(field, v);
      return [...(value as string[])];
    }
    case FieldType.DateTime: {
      if (typeof value !== 'number' || !Number.isFinite(value)) return fail('a date value is a millisecond timestamp');
      return Math.trunc(value);
    }
    case FieldType.Checkbox: {
      if (typeof value !== 'boolean') return fail('a checkbox value is true or false');
      return value ? true : null;
    }
    case FieldType.User: {
      if (!Array.isArray(value)) return fail('a person value is an array of {id}');
      if (value.length > PEOPLE_MAX) return fail(`at most ${PEOPLE_MAX} people`);
      const people: SimBitablePerson[] = [];
      for (const p of value) {
        // Only `id` is accepted (bitable-writes.md §6.3).
        if (!isPlainObject(p) || typeof p.id !== 'string' || Object.keys(p).some((k) => k !== 'id')) {
          return fail('each person is {"id": "<id of the user_id_type>"} and nothing else');
        }
        const who = ctx.person(p.id);
        if (!who) return fail(`${p.id} is not a user of this tenant in the user_id_type given`);
        people.push(who);
      }
      return people.length > 0 ? people : null;
    }
    case FieldType.Phone: {
      if (typeof value !== 'string' || value.length > 64 || !PHONE.test(value)) return fail('a phone value is a string of digits, optionally after +, at most 64 characters');
      return value === '' ? null : value;
    }
    case FieldType.Url: {
      if (!isPlainObject(value) || typeof value.link !== 'string' || (value.text !== undefined && typeof value.text !== 'string')) {
        return fail('a link value is {"text": "...", "link": "..."}');
      }
      // Text absent: shown as the link itself (Lark's behaviour here is not documented).
      return { text: value.text ?? value.link, link: value.link };
    }
    case FieldType.Attachment: {
      if (!Array.isArray(value) || !value.every((a) => isPlainObject(a) && typeof a.file_token === 'string')) {
        return fail('an attachment value is [{"file_token": "..."}]');
      }
      // More than 100 files: the notes give no dedicated code; the conversion failure stands in.
      if (value.length > ATTACHMENTS_MAX) return fail(`at most ${ATTACHMENTS_MAX} files`);
      const files = (value as Array<{ file_token: string }>).map(({ file_token }) => {
        const m = ctx.media(file_token);
        // bitable.md §5: 1254303 "no permission on attachment" — a token not uploaded to this Base.
        if (!m) throw new WriteError(1254303, `AttachPermNotAllow: ${file_token} was not uploaded to this Base (${where})`);
        return {
          file_token,
          name: m.name,
          type: m.type,
          size: m.size,
          url: `https://open.feishu.cn/open-apis/drive/v1/medias/${file_token}/download`,
          tmp_url: `https://open.feishu.cn/open-apis/drive/v1/medias/batch_get_tmp_download_url?file_tokens=${file_token}`,
        };
      });
      return files.length > 0 ? files : null;
    }
    case FieldType.SingleLink:
    case FieldType.DuplexLink: {
      // bitable-writes.md §6.3: 1254074 when not an array of strings (its HTTP status is not in
      // the notes; Base's usual 200). Ids that are no record of the linked table: 1254067.
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
        throw new WriteError(1254074, `DuplexLinkFieldConvFail: a link value is an array of record_id strings (${where})`);
      }
      if (value.length > LINKS_MAX) return fail(`at most ${LINKS_MAX} linked records`);
      const targetId = typeof field.property?.table_id === 'string' ? field.property.table_id : ctx.table.table_id;
      const target = ctx.tableById(targetId);
      for (const id of value as string[]) if (!target?.get(id)) return fail(`${id} is not a record of ${targetId}`);
      return value.length > 0 ? { link_record_ids: [...new Set(value as string[])] } : null;
    }
    default:
      // Types the simulator does not model (location, group, …): stored as given.
      return structuredClone(value);
  }
}
