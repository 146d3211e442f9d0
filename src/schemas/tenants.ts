import { Type, type Static } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const TenantStatusEnum = StringEnum(['active', 'paused', 'uninstalled']);

export const TokenHealth = Type.Object({
  status: StringEnum(['valid', 'refresh_due', 'expired', 'missing', 'error']),
  expiresAt: Nullable(Type.String({ format: 'date-time' })),
  refreshAt: Nullable(Type.String({ format: 'date-time' })),
  mintedAt: Nullable(Type.String({ format: 'date-time' })),
  mintCount: Type.Integer(),
  lastError: Nullable(Type.Object({ code: Type.String(), message: Type.String(), at: Type.String({ format: 'date-time' }) })),
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
    Type.Object({ action: Type.String(), at: Type.String({ format: 'date-time' }), eventId: Nullable(Type.String()) }),
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
