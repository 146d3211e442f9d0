import type { StreamRow } from '../../sync/streams.js';
import type { LarkInstance, LarkWidget } from './lark-types.js';

/** Lark sends times as Unix-millisecond strings and "0" for "not yet"; the tables hold timestamptz. */
export function msToIso(value: string | undefined): string | null {
  if (!value || !/^\d{1,16}$/.test(value) || value === '0') return null;
  return new Date(Number(value)).toISOString();
}

// Lark sends "" for ids it does not return (user_id without the field scope); store NULL instead.
const orNull = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);

export interface LeafWidget {
  path: string;
  widget: LarkWidget;
}

const isWidget = (v: unknown): v is LarkWidget => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Flattens a form to its leaf widgets. A top-level widget's path is its index; a widget inside a
 * fieldList row is `<list path>.items[<row>].<widget id>`, so each value keeps a stable address
 * even when two rows hold widgets with the same id.
 */
export function leafWidgets(form: unknown[]): LeafWidget[] {
  const out: LeafWidget[] = [];
  const visit = (w: LarkWidget, path: string) => {
    if (w.type === 'fieldList' && Array.isArray(w.value)) {
      w.value.forEach((row: unknown, r) => {
        if (!Array.isArray(row)) return;
        row.forEach((cell: unknown, j) => {
          if (isWidget(cell)) visit(cell, `${path}.items[${r}].${cell.id || String(j)}`);
        });
      });
      return;
    }
    out.push({ path, widget: w });
  };
  form.forEach((w, i) => {
    if (isWidget(w)) visit(w, String(i));
  });
  return out;
}

/** The form widgets, or undefined when `form` is not a JSON array (then stored fields are kept). */
export function parseForm(form: string | undefined): unknown[] | undefined {
  if (form === undefined || form === '') return [];
  try {
    const parsed: unknown = JSON.parse(form);
    return Array.isArray(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export interface InstanceRows {
  instance: StreamRow;
  /** undefined when the form could not be read */
  fields: StreamRow[] | undefined;
  tasks: StreamRow[];
  timeline: StreamRow[];
}

/** Every row of one instance detail. Deterministic: the same payload gives the same rows. */
export function instanceRows(inst: LarkInstance, instanceCode: string, approvalCode: string): InstanceRows {
  const partition = approvalCode;
  const form = parseForm(inst.form);
  return {
    instance: {
      recordKey: instanceCode,
      partition,
      raw: inst,
      columns: {
        approval_code: inst.approval_code || approvalCode,
        instance_code: instanceCode,
        approval_name: orNull(inst.approval_name),
        status: orNull(inst.status),
        serial_number: orNull(inst.serial_number),
        open_id: orNull(inst.open_id),
        user_id: orNull(inst.user_id),
        department_id: orNull(inst.department_id),
        start_time: msToIso(inst.start_time),
        end_time: msToIso(inst.end_time),
      },
    },
    fields: form === undefined
      ? undefined
      : leafWidgets(form).map(({ path, widget }) => ({
          recordKey: `${instanceCode}:${path}`,
          partition,
          raw: widget,
          columns: {
            instance_code: instanceCode,
            path,
            widget_id: orNull(widget.id),
            name: orNull(widget.name),
            type: orNull(widget.type),
            value: widget.value ?? null,
          },
        })),
    tasks: (inst.task_list ?? [])
      .filter((t) => t.id)
      .map((t) => ({
        recordKey: `${instanceCode}:${t.id}`,
        partition,
        raw: t,
        columns: {
          instance_code: instanceCode,
          task_id: t.id,
          status: orNull(t.status),
          node_id: orNull(t.node_id),
          node_name: orNull(t.node_name),
          type: orNull(t.type),
          open_id: orNull(t.open_id),
          user_id: orNull(t.user_id),
          start_time: msToIso(t.start_time),
          end_time: msToIso(t.end_time),
        },
      })),
    // The timeline has no ids; an entry's position is its identity (entries are only appended).
    timeline: (inst.timeline ?? []).map((e, position) => ({
      recordKey: `${instanceCode}:${position}`,
      partition,
      raw: e,
      columns: {
        instance_code: instanceCode,
        position,
        type: orNull(e.type),
        create_time: msToIso(e.create_time),
        open_id: orNull(e.open_id),
        user_id: orNull(e.user_id),
        task_id: orNull(e.task_id),
        comment: orNull(e.comment),
      },
    })),
  };
}
