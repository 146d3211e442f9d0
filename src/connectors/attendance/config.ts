import { Type, type Static } from '@sinclair/typebox';
import { literalUnion } from '../../sync/config-errors.js';
import { Identity } from '../../sync/identity.js';

export const AttendanceConfig = Type.Object(
  {
    employeeIds: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        minItems: 1,
        maxItems: 5000,
        description: 'Whose flows to read, as ids of employeeType; default: every user the app can see in Contact',
      }),
    ),
    employeeType: literalUnion(['employee_id', 'employee_no'], {
      default: 'employee_id',
      description: 'employee_id is the contact user_id; employee_no is the job number',
    }),
    lookbackDays: Type.Integer({
      minimum: 1,
      maximum: 90,
      default: 7,
      description: 'Every run re-reads this many days back, because corrections add flows to past days',
    }),
    identity: Identity,
  },
  { additionalProperties: false },
);
export type AttendanceConfigType = Static<typeof AttendanceConfig>;
