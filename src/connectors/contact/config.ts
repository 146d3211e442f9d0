import { Type, type Static } from '@sinclair/typebox';

export const ContactConfig = Type.Object(
  {
    departmentIds: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        minItems: 1,
        maxItems: 500,
        description: 'Roots to walk (recursively); default: the whole tenant ("0")',
      }),
    ),
    departmentIdType: Type.Union([Type.Literal('open_department_id'), Type.Literal('department_id')], { default: 'open_department_id' }),
    userIdType: Type.Union([Type.Literal('open_id'), Type.Literal('union_id'), Type.Literal('user_id')], { default: 'open_id' }),
  },
  { additionalProperties: false },
);
export type ContactConfigType = Static<typeof ContactConfig>;

export const ROOT_DEPARTMENT = '0';
