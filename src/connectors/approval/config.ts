import { Type, type Static } from '@sinclair/typebox';
import { Identity } from '../../sync/identity.js';

export const ApprovalConfig = Type.Object(
  {
    approvalCodes: Type.Array(Type.String({ minLength: 1, maxLength: 128, description: 'An approval definition code' }), {
      minItems: 1,
      maxItems: 200,
      uniqueItems: true,
      // Lark has no API listing a tenant's approval definitions for a store app, so they are named.
      description: 'Approval definitions whose instances are synced',
    }),
    backfillDays: Type.Integer({
      minimum: 1,
      maximum: 3650,
      default: 365,
      description: 'How far back (by creation time) the first run and every full run reach',
    }),
    lookbackDays: Type.Integer({
      minimum: 0,
      maximum: 365,
      default: 7,
      description: 'Creation-time span re-read by each incremental run, to pick up status changes',
    }),
    identity: Identity,
  },
  { additionalProperties: false },
);
export type ApprovalConfigType = Static<typeof ApprovalConfig>;
