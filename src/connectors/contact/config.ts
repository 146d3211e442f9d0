import { Type, type Static } from '@sinclair/typebox';
import { literalUnion } from '../../sync/config-errors.js';
import { Identity } from '../../sync/identity.js';

export const ContactConfig = Type.Object(
  {
    departmentIds: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        minItems: 1,
        maxItems: 500,
        description: 'Roots to walk (recursively); default: the whole tenant ("0")',
      }),
    ),
    departmentIdType: literalUnion(['open_department_id', 'department_id'], { default: 'open_department_id' }),
    userIdType: literalUnion(['open_id', 'union_id', 'user_id'], { default: 'open_id' }),
    identity: Identity,
  },
  { additionalProperties: false },
);
export type ContactConfigType = Static<typeof ContactConfig>;

export const ROOT_DEPARTMENT = '0';
