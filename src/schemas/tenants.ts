import { Type, type Static } from '@sinclair/typebox';

export const TenantStatusEnum = Type.Union([Type.Literal('active'), Type.Literal('paused'), Type.Literal('uninstalled')]);

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const TokenHealth = Type.Object({
  status: Type.Union([
    Type.Literal('valid'),
    Type.Literal('refresh_due'),
    Type.Literal('expired'),
    Type.Literal('missing'),
    Type.Literal('error'),
  ]),
  expiresAt: Nullable(Type.String({ format: 'date-time' })),
  refreshAt: Nullable(Type.String({ format: 'date-time' })),
  mintedAt: Nullable(Type.String({ format: 'date-time' })),
  mintCount: Type.Integer(),
  lastError: Type.Union([
    Type.Object({ code: Type.String(), message: Type.String(), at: Type.String({ format: 'date-time' }) }),
    Type.Null(),
  ]),
});

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
  appType: Type.Union([Type.Literal('store'), Type.Literal('custom')]),
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
});
export type TenantDetailType = Static<typeof TenantDetail>;

export const TenantParams = Type.Object({ tenantKey: Type.String({ minLength: 1, maxLength: 128 }) });

export const TenantListQuery = Type.Object({
  status: Type.Optional(TenantStatusEnum),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  cursor: Type.Optional(Type.String({ description: 'nextCursor from the previous page' })),
});

export const TenantList = Type.Object({
  tenants: Type.Array(TenantSummary),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});
