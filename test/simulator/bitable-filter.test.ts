import { describe, expect, it } from 'vitest';
import {
  FieldType,
  FilterError,
  SimTable,
  compileCondition,
  compileGroup,
  dayOf,
  type Condition,
  type FilterGroup,
  type SimBitableField,
  type SimBitableRecord,
} from '../../simulator/data/bitable/index.js';

// The records/search filter compiler, checked against shared/lark/bitable.md §2.4: date conditions
// compare whole days in the base's zone (the simulated bases are UTC+8), only is / isGreater /
// isLess (and the emptiness checks) work on dates, formula and lookup fields cannot be filtered.

const HOUR = 3_600_000;
/** 2024-06-01 00:00 in UTC+8 (= 2024-05-31 16:00 UTC). */
const JUNE1 = Date.UTC(2024, 4, 31, 16);
/** 2024-06-02 01:00 in UTC+8, still 2024-06-01 in UTC. */
const NOW = Date.UTC(2024, 5, 1, 17);

const field = (field_name: string, type: number, ui_type: string): SimBitableField => ({
  field_id: `fld${field_name}`,
  field_name,
  type,
  ui_type,
  is_primary: false,
});
const FIELDS = [
  field('Title', FieldType.Text, 'Text'),
  field('Amount', FieldType.Number, 'Number'),
  field('Due', FieldType.DateTime, 'DateTime'),
  field('Done', FieldType.Checkbox, 'Checkbox'),
  field('Score', FieldType.Formula, 'Formula'),
  field('Echo', FieldType.Lookup, 'Lookup'),
  field('Created', FieldType.CreatedTime, 'CreatedTime'),
  field('Modified', FieldType.ModifiedTime, 'ModifiedTime'),
];
const person = { id: 'ou_1', name: 'A', en_name: 'A', email: 'a@example.com' };
const table = new SimTable('tblFilterTest', 'Filter test', 'F', FIELDS, [], 0, () => ({ fields: {}, created_by: person, created_time: 0, last_modified_by: person, last_modified_time: 0 }), () => NOW);

const rec = (fields: Record<string, unknown>): SimBitableRecord => ({
  record_id: 'recF0000000',
  fields,
  created_by: person,
  created_time: 0,
  last_modified_by: person,
  last_modified_time: 0,
});
const cond = (field_name: string, operator: string, value: string[]): Condition => ({ field_name, operator, value });
const exact = (ms: number) => ['ExactDate', String(ms)];
/** Which of the given Due values a condition keeps. */
const keeps = (c: Condition, dues: number[]) => {
  const p = compileCondition(table, c, NOW);
  return dues.filter((d) => p(rec({ Due: d })));
};
/** The Base code a compile fails with (undefined when it compiles). */
const codeOf = (compile: () => unknown): number | undefined => {
  try {
    compile();
    return undefined;
  } catch (err) {
    if (err instanceof FilterError) return err.code;
    throw err;
  }
};

describe('bitable filter compiler', () => {
  describe('ExactDate compares whole days in UTC+8', () => {
    const dues = [
      JUNE1 - 1, // 2024-05-31 23:59:59.999 +8
      JUNE1, // 2024-06-01 00:00 +8, a UTC date of May 31
      Date.UTC(2024, 5, 1, 0), // 2024-06-01 08:00 +8
      JUNE1 + 24 * HOUR - 1, // 2024-06-01 23:59:59.999 +8
      JUNE1 + 24 * HOUR, // 2024-06-02 00:00 +8, a UTC date of June 1
    ];

    it('is: every instant of that day in UTC+8 and nothing else, whatever time of day the value carries', () => {
      const want = [dues[1], dues[2], dues[3]];
      expect(keeps(cond('Due', 'is', exact(JUNE1)), dues)).toEqual(want);
      // The timestamp is truncated to its day: 20:00 or 23:59 on June 1 (+8) mean the same day.
      expect(keeps(cond('Due', 'is', exact(JUNE1 + 20 * HOUR)), dues)).toEqual(want);
      expect(keeps(cond('Due', 'is', exact(JUNE1 + 24 * HOUR - 1)), dues)).toEqual(want);
      // UTC midnight of June 1 is 08:00 on June 1 in UTC+8: the same day, not May 31.
      expect(keeps(cond('Due', 'is', exact(Date.UTC(2024, 5, 1))), dues)).toEqual(want);
      // 2024-06-01 16:00 UTC is already June 2 in UTC+8.
      expect(keeps(cond('Due', 'is', exact(Date.UTC(2024, 5, 1, 16))), dues)).toEqual([dues[4]]);
      expect(dayOf(exact(JUNE1), NOW)).toBe(dayOf(exact(JUNE1 + 24 * HOUR - 1), NOW));
      expect(dayOf(exact(JUNE1 + 24 * HOUR), NOW)).toBe(dayOf(exact(JUNE1), NOW) + 1);
    });

    it('isGreater: strictly later days only; isLess: strictly earlier days only', () => {
      expect(keeps(cond('Due', 'isGreater', exact(JUNE1 + 12 * HOUR)), dues)).toEqual([dues[4]]);
      expect(keeps(cond('Due', 'isLess', exact(JUNE1 + 12 * HOUR)), dues)).toEqual([dues[0]]);
    });

    it('Today, Yesterday and Tomorrow are days in UTC+8 of the given clock', () => {
      // NOW is June 2 (+8) although its UTC date is June 1.
      expect(keeps(cond('Due', 'is', ['Today']), dues)).toEqual([dues[4]]);
      expect(keeps(cond('Due', 'is', ['Yesterday']), dues)).toEqual([dues[1], dues[2], dues[3]]);
      expect(keeps(cond('Due', 'isLess', ['Yesterday']), dues)).toEqual([dues[0]]);
      expect(keeps(cond('Due', 'isGreater', ['Tomorrow']), dues)).toEqual([]);
      expect(dayOf(['Tomorrow'], NOW) - dayOf(['Yesterday'], NOW)).toBe(2);
    });

    it('applies the same way to created-time and modified-time fields', () => {
      const p = compileCondition(table, cond('Created', 'is', exact(JUNE1)), NOW);
      expect(p(rec({ Created: JUNE1 + 24 * HOUR - 1 }))).toBe(true);
      expect(p(rec({ Created: JUNE1 + 24 * HOUR }))).toBe(false);
      const q = compileCondition(table, cond('Modified', 'isGreater', exact(JUNE1)), NOW);
      expect(q(rec({ Modified: JUNE1 + 24 * HOUR }))).toBe(true);
      expect(q(rec({ Modified: JUNE1 + 24 * HOUR - 1 }))).toBe(false);
    });

    it('an empty date cell matches no comparison, only isEmpty', () => {
      const empty = rec({});
      for (const op of ['is', 'isGreater', 'isLess']) expect(compileCondition(table, cond('Due', op, exact(JUNE1)), NOW)(empty)).toBe(false);
      expect(compileCondition(table, cond('Due', 'isEmpty', []), NOW)(empty)).toBe(true);
      expect(compileCondition(table, cond('Due', 'isNotEmpty', []), NOW)(empty)).toBe(false);
      expect(compileCondition(table, cond('Due', 'isNotEmpty', []), NOW)(rec({ Due: JUNE1 }))).toBe(true);
    });

    it('an ExactDate without a usable timestamp is an invalid filter (1254018)', () => {
      expect(codeOf(() => compileCondition(table, cond('Due', 'is', ['ExactDate']), NOW))).toBe(1254018);
      expect(codeOf(() => compileCondition(table, cond('Due', 'is', ['ExactDate', 'June']), NOW))).toBe(1254018);
    });
  });

  it('operators Lark does not support answer 1254018: on dates isNot/contains/doesNotContain/isGreaterEqual/isLessEqual, anywhere like/in', () => {
    for (const op of ['isNot', 'contains', 'doesNotContain', 'isGreaterEqual', 'isLessEqual']) {
      expect(codeOf(() => compileCondition(table, cond('Due', op, exact(JUNE1)), NOW)), op).toBe(1254018);
      expect(codeOf(() => compileCondition(table, cond('Created', op, exact(JUNE1)), NOW)), op).toBe(1254018);
    }
    for (const op of ['like', 'in', 'between', '']) {
      expect(codeOf(() => compileCondition(table, cond('Title', op, ['x']), NOW)), op).toBe(1254018);
      expect(codeOf(() => compileCondition(table, cond('Amount', op, ['1']), NOW)), op).toBe(1254018);
    }
    // The same operators compile on the field types that have them.
    expect(codeOf(() => compileCondition(table, cond('Amount', 'isGreaterEqual', ['1']), NOW))).toBeUndefined();
    expect(codeOf(() => compileCondition(table, cond('Title', 'contains', ['x']), NOW))).toBeUndefined();
  });

  it('an unknown field name answers 1254045', () => {
    expect(codeOf(() => compileCondition(table, cond('Nope', 'is', ['x']), NOW))).toBe(1254045);
    expect(codeOf(() => compileCondition(table, { operator: 'is', value: ['x'] }, NOW))).toBe(1254045);
    // Field names match exactly.
    expect(codeOf(() => compileCondition(table, cond('title', 'is', ['x']), NOW))).toBe(1254045);
  });

  it('formula and lookup fields cannot be filtered, with any operator (1254018)', () => {
    for (const name of ['Score', 'Echo']) {
      for (const [op, value] of [['is', ['1']], ['isGreater', ['1']], ['isEmpty', []], ['isNotEmpty', []]] as const) {
        expect(codeOf(() => compileCondition(table, cond(name, op, [...value]), NOW)), `${name} ${op}`).toBe(1254018);
      }
    }
  });

  it('condition values must be at most 10 strings', () => {
    expect(codeOf(() => compileCondition(table, cond('Title', 'contains', Array.from({ length: 11 }, (_, i) => String(i))), NOW))).toBe(1254018);
    expect(codeOf(() => compileCondition(table, { field_name: 'Amount', operator: 'is', value: [1] }, NOW))).toBe(1254018);
    expect(codeOf(() => compileCondition(table, { field_name: 'Amount', operator: 'is', value: '1' }, NOW))).toBe(1254018);
  });

  it('groups: and / or, one level of children, errors from any condition', () => {
    const group = (g: FilterGroup) => compileGroup(table, g, NOW);
    const r = rec({ Title: [{ type: 'text', text: 'alpha' }], Amount: 5, Done: true });
    const yes = cond('Amount', 'isGreater', ['1']);
    const no = cond('Done', 'is', ['false']);
    expect(group({ conjunction: 'and', conditions: [yes, no] })(r)).toBe(false);
    expect(group({ conjunction: 'or', conditions: [yes, no] })(r)).toBe(true);
    expect(group({ conjunction: 'and', conditions: [yes], children: [{ conjunction: 'or', conditions: [no, cond('Title', 'contains', ['lph'])] }] })(r)).toBe(true);
    expect(group({ conjunction: 'and', conditions: [] })(r)).toBe(true);
    expect(codeOf(() => group({ conjunction: 'xor', conditions: [yes] }))).toBe(1254018);
    expect(codeOf(() => group({ conditions: [yes] }))).toBe(1254018);
    expect(codeOf(() => group({ conjunction: 'and', children: [{ conjunction: 'and', children: [{ conjunction: 'and', conditions: [yes] }] }] }))).toBe(1254018);
    expect(codeOf(() => group({ conjunction: 'and', conditions: Array.from({ length: 51 }, () => yes) }))).toBe(1254018);
    expect(codeOf(() => group({ conjunction: 'or', conditions: [yes], children: [{ conjunction: 'and', conditions: [cond('Nope', 'is', ['x'])] }] }))).toBe(1254045);
  });
});
