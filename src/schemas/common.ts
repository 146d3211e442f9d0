import { Type, type Static } from '@sinclair/typebox';

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable, machine-readable error code' }),
      message: Type.String({ description: 'What went wrong and what to fix' }),
    }),
  },
);
export type ErrorBodyType = Static<typeof ErrorBody>;

export function errorResponses<C extends number>(...codes: C[]): Record<C, typeof ErrorBody> {
  return Object.fromEntries(codes.map((c) => [c, { ...ErrorBody, description: 'Error' }])) as Record<C, typeof ErrorBody>;
}
