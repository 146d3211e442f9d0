import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';

/**
 * `{ type: 'string', enum: [...] }` rather than TypeBox's union of literals: OpenAPI 3.0 shows it
 * as one enum, and a bad value is reported as "must be one of: a, b" instead of once per literal.
 */
export const StringEnum = <const T extends readonly string[]>(
  values: T,
  options: { description?: string; default?: T[number] } = {},
): TUnsafe<T[number]> =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** Registered once with `app.addSchema`, so the spec holds it once under components.schemas.ErrorBody. */
export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable, machine-readable error code' }),
      message: Type.String({ description: 'What went wrong and what to fix; never contains secrets or internals' }),
    }),
  },
  { $id: 'ErrorBody', title: 'ErrorBody' },
);
export type ErrorBodyType = Static<typeof ErrorBody>;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: the message names the offending field (or the body is not valid JSON)',
  401: 'Missing or wrong credentials (Authorization: Bearer <API_TOKEN>, or a bad Lark signature/token)',
  404: 'Not found',
  409: 'Conflicts with existing state',
  413: 'Request body larger than 1 MiB',
  415: 'Unsupported content type: send application/json',
  429: 'Rate limited (API_RATE_LIMIT per minute per client); wait the seconds given in retry-after',
  500: 'Internal error; details go to the server log only',
  502: 'Lark could not be reached, or failed',
  503: 'Not available: REST API disabled (no API_TOKEN), or no store app configured',
};

/** Error responses by status code, all `{ error: { code, message } }`. */
export function errorResponses<C extends number>(...codes: C[]) {
  const ref = Type.Unsafe<ErrorBodyType>(Type.Ref(ErrorBody));
  return Object.fromEntries(
    codes.map((c) => [c, { ...ref, description: ERROR_DESCRIPTIONS[c] ?? 'Error' }]),
  ) as Record<C, typeof ref>;
}
