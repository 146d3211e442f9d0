import { Type, type Static } from '@sinclair/typebox';
import { MINT_ERROR_CLASSES } from '../tokens/mint-errors.js';
import { Nullable, StringEnum } from './common.js';

export const TenantStatusEnum = StringEnum(['active', 'paused', 'uninstalled']);

export const TokenHealth = Type.Object({
  status: StringEnum(['valid', 'refresh_due', 'expired', 'missing', 'failing'], {
    description:
      '`failing`: the last mint failed; a stored token still valid (see expiresAt) is used meanwhile, and mints back off',
  }),
  expiresAt: Nullable(Type.String({ format: 'date-time' })),
  refreshAt: Nullable(Type.String({ format: 'date-time' })),
  mintedAt: Nullable(Type.String({ format: 'date-time' })),
  mintCount: Type.Integer(),
  failures: Type.Integer({ minimum: 0, description: 'Mints failed in a row (0 after a success)' }),
  nextAttemptAt: Nullable(Type.String({ format: 'date-time', description: 'While backing off: no mint before this' })),
  lastError: Nullable(
    Type.Object({
      code: Type.String({ description: "Lark's code, or larksync's own (app_ticket_missing, transport_error, ...)" }),
      class: StringEnum([...MINT_ERROR_CLASSES], { description: 'What kind of failure: what to fix' }),
      message: Type.String(),
      at: Type.String({ format: 'date-time' }),
    }),
  ),
}, { description: 'Health of the tenant access token; the token itself is never shown' });

export const TenantSummary = Type.Object({
  tenantKey: Type.String(),
  appId: Type.String(),
  status: TenantStatusEnum,
  name: Nullable(Type.String()),
  installedAt: Type.String({ format: 'date-time' }),
  statusChangedAt: Type.String({ format: 'date-time' }),
});
export type TenantSummaryType = Static<typeof TenantSummary>;

export const TenantDetail = Type.Object({
  tenantKey: Type.String(),
  appId: Type.String(),
  appType: StringEnum(['store', 'custom']),
  status: TenantStatusEnum,
  statusReason: Nullable(Type.String()),
  name: Nullable(Type.String()),
  installer: Nullable(Type.String({ description: 'open_id of the admin who installed the app' })),
  installerEmployee: Nullable(Type.String({ description: 'open_id of the member who installed the app' })),
  applicants: Type.Array(Type.String(), { description: 'open_ids of users who applied for the app' }),
  installedAt: Type.String({ format: 'date-time' }),
  statusChangedAt: Type.String({ format: 'date-time' }),
  uninstalledAt: Nullable(Type.String({ format: 'date-time' })),
  token: TokenHealth,
  lifecycle: Type.Array(
    Type.Object({
      action: Type.String(),
      at: Type.String({ format: 'date-time' }),
      eventId: Nullable(Type.String()),
      appId: Nullable(Type.String({ description: 'The app whose push (or registration) this was' })),
    }),
    { description: 'Most recent lifecycle changes, newest first' },
  ),
}, { description: 'The tenant' });
export type TenantDetailType = Static<typeof TenantDetail>;

export const TenantParams = Type.Object({ tenantKey: Type.String({ minLength: 1, maxLength: 128 }) });

export const TenantListQuery = Type.Object({
  status: Type.Optional(TenantStatusEnum),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  cursor: Type.Optional(Type.String({ description: 'nextCursor from the previous page' })),
});

export const TenantList = Type.Object(
  {
    tenants: Type.Array(TenantSummary),
    nextCursor: Nullable(Type.String({ description: 'Pass as `cursor` for the next page; null on the last page' })),
  },
  { description: 'One page of tenants, ordered by tenant key' },
);
