import fc from 'fast-check';

/**
 * Values for a JSON schema (the subset our OpenAPI document and TypeBox module configs use), mostly
 * valid and sometimes just wrong: a boundary crossed, a wrong type, a required field missing, an
 * unknown property, a hostile string. "Near-valid" is what reaches the code behind validation.
 */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  not?: JsonSchema;
  default?: unknown;
}

export interface ValueOptions {
  /** Chance (0..1) that a node is deliberately wrong. */
  wrongness: number;
  /** Strings to slip in now and then (our secrets, for leak checks). */
  plant: string[];
  depth?: number;
}

/** Strings that have broken servers before. U+0000 and lone surrogates are the interesting ones for Postgres. */
export const hostileStrings: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\ud800',
    '\udfff',
    '🦄',
    '\u202e',
    '../../etc/passwd',
    '%00',
    '%',
    "' or 1=1 --",
    '"; drop table tenants; --',
    '${jndi:ldap://x}',
    '<script>',
    '__proto__',
    'constructor',
    'null',
    'NaN',
    '1e400',
    '-0',
    '9'.repeat(40),
  ),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.integer({ min: 100, max: 3_000 }).map((n) => 'z'.repeat(n)),
);

function stringFor(s: JsonSchema): fc.Arbitrary<string> {
  if (s.format === 'date-time') {
    return fc.oneof(
      fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('2026-11-21T10:00:00+08:00', '2026-11-21T10:00:00Z', '2016-12-31T23:59:60Z', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999999999Z'),
    );
  }
  if (s.pattern) {
    try {
      const re = new RegExp(s.pattern);
      const max = s.maxLength ?? 64;
      return fc.stringMatching(re).filter((v) => v.length >= (s.minLength ?? 0) && v.length <= max);
    } catch {
      // A pattern fast-check cannot invert: fall through to plain strings.
    }
  }
  return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 40) });
}

function wrongFor(s: JsonSchema, o: ValueOptions): fc.Arbitrary<unknown> {
  const outOfRange: Array<fc.Arbitrary<unknown>> = [];
  if (s.maxLength !== undefined) outOfRange.push(fc.constant('m'.repeat(s.maxLength + 1)));
  if (s.minLength !== undefined && s.minLength > 0) outOfRange.push(fc.constant(''));
  if (s.maximum !== undefined) outOfRange.push(fc.constantFrom(s.maximum + 1, s.maximum + 0.5, Number.MAX_SAFE_INTEGER, 1e308));
  if (s.minimum !== undefined) outOfRange.push(fc.constantFrom(s.minimum - 1, s.minimum - 0.5, -1, -Number.MAX_SAFE_INTEGER));
  if (s.maxItems !== undefined) outOfRange.push(fc.constant(Array.from({ length: s.maxItems + 1 }, (_, i) => `item-${i}`)));
  if (s.minItems !== undefined && s.minItems > 0) outOfRange.push(fc.constant([]));
  if (s.enum) outOfRange.push(fc.constantFrom(...s.enum.map((v) => (typeof v === 'string' ? v.toUpperCase() : v)), 'not-a-choice'));
  return fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    hostileStrings,
    fc.constantFrom(null, true, 0, -1, 1.5, [], {}, '1', 'true'),
    ...(o.plant.length > 0 ? [fc.constantFrom(...o.plant)] : []),
    ...outOfRange,
  );
}

/** A value for `schema`: valid, or (with probability `wrongness` per node) wrong. */
export function valueFor(schema: JsonSchema, o: ValueOptions): fc.Arbitrary<unknown> {
  const depth = o.depth ?? 0;
  const inner: ValueOptions = { ...o, depth: depth + 1 };
  const valid = validFor(schema, inner, depth);
  if (o.wrongness <= 0) return valid;
  const w = Math.max(1, Math.round(o.wrongness * 100));
  return fc.oneof({ weight: 100 - w, arbitrary: valid }, { weight: w, arbitrary: wrongFor(schema, o) });
}

function validFor(s: JsonSchema, o: ValueOptions, depth: number): fc.Arbitrary<unknown> {
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  if (s.not) return fc.constant(undefined);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives && alternatives.length > 0) return fc.oneof(...alternatives.map((a) => valueFor(a, o)));
  if (s.allOf && s.allOf.length > 0) {
    // TypeBox intersections of objects: merge what each part generates.
    return fc.tuple(...s.allOf.map((a) => valueFor(a, o))).map((parts) =>
      Object.assign({}, ...parts.map((p) => (p && typeof p === 'object' && !Array.isArray(p) ? p : {}))),
    );
  }
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'string':
      return stringFor(s);
    case 'integer':
      return fc.integer({ min: s.minimum ?? -1_000, max: s.maximum ?? 1_000_000 });
    case 'number':
      return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      if (depth > 4) return fc.constant([]);
      const item = s.items ? valueFor(s.items, o) : fc.jsonValue({ maxDepth: 1 });
      const min = s.minItems ?? 0;
      const max = Math.min(s.maxItems ?? 5, min + 5);
      return fc.array(item, { minLength: min, maxLength: max }).map((a) => (s.uniqueItems ? dedupe(a) : a));
    }
    case 'object':
    default: {
      if (!s.properties) {
        return depth > 3 ? fc.constant({}) : fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });
      }
      const required = new Set(s.required ?? []);
      const entries = Object.entries(s.properties).map(([k, p]) => {
        // A required field is sometimes dropped; an optional one often.
        const keep = required.has(k) ? fc.nat(99).map((n) => n >= o.wrongness * 30) : fc.boolean();
        return fc.tuple(fc.constant(k), keep, valueFor(p, o));
      });
      const extra = fc.oneof(
        { weight: 9, arbitrary: fc.constant<Array<[string, unknown]>>([]) },
        { weight: 1, arbitrary: fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'prototype')), fc.jsonValue({ maxDepth: 1 })), { maxLength: 2 }) },
      );
      return fc.tuple(fc.tuple(...entries), extra).map(([fields, more]) => {
        const out: Record<string, unknown> = {};
        for (const [k, keep, v] of fields) if (keep && v !== undefined) out[k] = v;
        for (const [k, v] of more) Object.defineProperty(out, k, { value: v, enumerable: true, configurable: true, writable: true });
        return out;
      });
    }
  }
}

function dedupe(values: unknown[]): unknown[] {
  const seen = new Set<string>();
  return values.filter((v) => {
    const key = JSON.stringify(v);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
