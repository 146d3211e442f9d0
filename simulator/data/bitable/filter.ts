import { FieldType, baseDay, textOf, type SimBitableRecord, type SimTable } from './table.js';

/**
 * The records/search filter compiler: the one place that defines which records Lark returns for a
 * filter (bitable.md §2.4). Date conditions compare whole days in the bases' zone (UTC+8):
 * `ExactDate` truncates its timestamp to that day, as Lark truncates it to midnight in the base's
 * time zone.
 */

const DATE_TYPES: ReadonlySet<number> = new Set([FieldType.DateTime, FieldType.CreatedTime, FieldType.ModifiedTime]);
const UNFILTERABLE_TYPES: ReadonlySet<number> = new Set([FieldType.Formula, FieldType.Lookup]);

/** One filter condition as the request carries it (fields unchecked until compiled). */
export interface Condition {
  field_name?: unknown;
  operator?: unknown;
  value?: unknown;
}
/** A filter group: the top-level `filter` object or one of its `children`. */
export interface FilterGroup {
  conjunction?: unknown;
  conditions?: unknown;
  children?: unknown;
}

export type Predicate = (r: SimBitableRecord) => boolean;
/** A filter Lark rejects: `code` is the Base error code to answer with (1254018, 1254045). */
export class FilterError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A date condition's value as a day number in the base's zone (bitable.md §2.4). */
export function dayOf(value: string[], now: number): number {
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

/** Compiles one condition against a table's fields; throws FilterError for what Lark rejects. */
export function compileCondition(table: SimTable, c: Condition, now: number): Predicate {
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

/** Compiles a filter group (depth 0 = the top level; only one level of children is allowed). */
export function compileGroup(table: SimTable, g: FilterGroup, now: number, depth = 0): Predicate {
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
