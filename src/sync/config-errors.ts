import { Type, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox';
import { GetErrorFunction, SetErrorFunction, type ErrorFunction } from '@sinclair/typebox/errors';

/**
 * TypeBox only says "Expected union value" when no variant of a union matches, and connector
 * validation shows the first error as-is. Schemas may carry an `errorMessage` that says what is
 * expected instead (a string, or a function of the error that words it from the value). The hook
 * is chained and installed once per process, so anything else that customised TypeBox messages
 * keeps working; schemas without `errorMessage` get the usual text.
 */
const HOOKED = Symbol.for('larksync.typebox.errorMessage');
const current = GetErrorFunction() as ErrorFunction & { [HOOKED]?: true };
if (!current[HOOKED]) {
  const previous: ErrorFunction = current;
  const withMessages = ((error) => {
    const custom = (error.schema as TSchema & { errorMessage?: unknown }).errorMessage;
    // A function words the message from the value (e.g. where in a regular expression it fails).
    if (typeof custom === 'function') return String((custom as (e: { value: unknown }) => unknown)(error));
    return typeof custom === 'string' ? custom : previous(error);
  }) as ErrorFunction & { [HOOKED]?: true };
  withMessages[HOOKED] = true;
  SetErrorFunction(withMessages);
}

/** A choice of strings whose error names the allowed values. */
export function literalUnion<const T extends readonly [string, ...string[]]>(
  values: T,
  options: { default?: T[number]; description?: string } = {},
): TUnion<Array<TLiteral<T[number]>>> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    { ...options, errorMessage: `expected one of ${values.map((v) => `"${v}"`).join(', ')}` },
  ) as TUnion<Array<TLiteral<T[number]>>>;
}
