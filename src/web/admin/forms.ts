import type { ConnectorInput } from '../../sync/connectors.service.js';
import { MODULES } from '../../connectors/index.js';
import type { FieldSpec, ModuleForm } from '../../sync/module-form.js';
import { MAX_INTERVAL_MINUTES, MIN_INTERVAL_MINUTES } from '../../schemas/connectors.js';
import { DEFAULT_INTERVAL_MINUTES } from '../../sync/connectors.service.js';

/**
 * The admin page's connector forms: each module declares its own (SyncModuleDef.form, see
 * sync/module-form.ts); this maps posted forms to configs and back.
 */

/** A form as typed: every field as text (a checkbox is "on" or ""). */
export type FormValues = Record<string, string>;

export type { FieldSpec, ModuleForm };

import type { SyncModuleName } from '../../sync/sync.tables.js';

/** Every module's form, by module name. */
export const MODULE_FORMS: Readonly<Record<string, ModuleForm>> = Object.fromEntries(Object.entries(MODULES).map(([name, m]) => [name, m.form]));

/** The form as stored settings fill it (or empty with defaults for a module never configured). */
export function valuesFromConnector(
  module: SyncModuleName,
  connector: { enabled: boolean; intervalMinutes: number; config: Record<string, unknown> } | undefined,
): FormValues {
  const values: FormValues = {
    enabled: (connector?.enabled ?? true) ? 'on' : '',
    intervalMinutes: String(connector?.intervalMinutes ?? DEFAULT_INTERVAL_MINUTES),
  };
  const config = connector?.config ?? {};
  for (const f of MODULE_FORMS[module]!.fields) {
    const v = config[f.name];
    if (f.kind === 'lines') values[f.name] = Array.isArray(v) ? v.map((e) => (f.fromEntry ? f.fromEntry(e) : String(e))).join('\n') : '';
    else if (f.kind === 'integer') values[f.name] = typeof v === 'number' ? String(v) : String(f.defaultValue);
    else values[f.name] = typeof v === 'string' ? v : f.options[0]!;
  }
  return values;
}

/** A posted field as one string (the first when repeated; form bodies may repeat a name). */
export function field(body: unknown, name: string): string {
  const v = body && typeof body === 'object' ? (body as Record<string, unknown>)[name] : undefined;
  if (Array.isArray(v)) return typeof v[0] === 'string' ? v[0] : '';
  return typeof v === 'string' ? v : '';
}

export type FormResult =
  | { ok: true; values: FormValues; input: ConnectorInput; lines: Record<string, number[]> }
  | { ok: false; values: FormValues; message: string };

const LIMIT = 100_000;

/**
 * Reads a posted form into what the REST API's PUT takes. Only the schedule is checked here (as
 * the REST route's schema does); the config goes to the connectors service unjudged. Numbers that
 * are not whole numbers are passed on as text, so the service's message names the field.
 */
export function readForm(module: SyncModuleName, body: unknown): FormResult {
  const values: FormValues = { enabled: field(body, 'enabled') ? 'on' : '', intervalMinutes: field(body, 'intervalMinutes').trim().slice(0, 20) };
  const config: Record<string, unknown> = {};
  const lines: Record<string, number[]> = {};
  for (const f of MODULE_FORMS[module]!.fields) {
    const raw = field(body, f.name).slice(0, LIMIT);
    values[f.name] = raw;
    if (f.kind === 'lines') {
      const entries: unknown[] = [];
      const numbers: number[] = [];
      raw.split(/\r?\n/).forEach((line, i) => {
        const t = line.trim();
        if (!t) return;
        entries.push(f.toEntry ? f.toEntry(t) : t);
        numbers.push(i + 1);
      });
      if (entries.length > 0 || !f.optional) config[f.name] = entries;
      lines[f.name] = numbers;
    } else if (f.kind === 'integer') {
      const t = raw.trim();
      if (t !== '') config[f.name] = /^-?\d{1,9}$/.test(t) ? Number(t) : t;
    } else if (raw !== '') {
      config[f.name] = raw;
    }
  }
  let intervalMinutes: number | undefined;
  if (values.intervalMinutes !== '') {
    const n = /^\d{1,6}$/.test(values.intervalMinutes!) ? Number(values.intervalMinutes) : NaN;
    if (!(n >= MIN_INTERVAL_MINUTES && n <= MAX_INTERVAL_MINUTES)) {
      return { ok: false, values, message: `intervalMinutes: a whole number of minutes from ${MIN_INTERVAL_MINUTES} to ${MAX_INTERVAL_MINUTES}` };
    }
    intervalMinutes = n;
  }
  return { ok: true, values, lines, input: { enabled: values.enabled === 'on', ...(intervalMinutes === undefined ? {} : { intervalMinutes }), config } };
}

/**
 * The service's message, with the line the admin typed it on when it names an entry of a
 * one-per-line field (`config.tables.2.url: …` → `… (Base tables, line 4)`).
 */
export function withLine(module: SyncModuleName, message: string, lines: Record<string, number[]>): string {
  const m = /^config\.([A-Za-z]+)\.(\d+)\b/.exec(message);
  if (!m) return message;
  const f = MODULE_FORMS[module]!.fields.find((x) => x.name === m[1]);
  const line = lines[m[1]!]?.[Number(m[2])];
  return f && line !== undefined ? `${message} (${f.label}, line ${line})` : message;
}
