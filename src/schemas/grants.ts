import { Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const Grant = Type.Object(
  {
    appId: Type.String(),
    tenantKey: Type.String(),
    openId: Type.String({ description: 'The user who authorized' }),
    unionId: Nullable(Type.String()),
    name: Nullable(Type.String()),
    scopes: Type.Array(Type.String(), { description: 'Scopes the user granted' }),
    status: StringEnum(['active', 'needs_reauth', 'revoked'], {
      description: 'needs_reauth: the refresh token is gone (expired, revoked, used): the user must sign in again; nothing retries it',
    }),
    statusReason: Nullable(Type.String()),
    authorizedAt: Type.String({ format: 'date-time' }),
    refreshedAt: Nullable(Type.String({ format: 'date-time' })),
    accessExpiresAt: Nullable(Type.String({ format: 'date-time' })),
    refreshExpiresAt: Nullable(Type.String({ format: 'date-time' })),
    lastError: Nullable(Type.Object({ class: Type.String(), code: Nullable(Type.String()), at: Type.String({ format: 'date-time' }) })),
  },
  { description: "A user's authorization of the app in this tenant; token values are never shown" },
);

export const GrantList = Type.Object({ grants: Type.Array(Grant) });

export const GrantParams = Type.Object({
  tenantKey: Type.String({ minLength: 1, maxLength: 128 }),
  openId: Type.String({ minLength: 1, maxLength: 128 }),
});

export const LoginUrlQuery = Type.Object({
  tenantKey: Type.String({ minLength: 1, maxLength: 128, description: 'The company whose user signs in: its app and enabled modules decide the client id and scopes' }),
  returnTo: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 2000,
      description: 'Where the browser goes after the sign-in: a path of larksync, or an http(s) URL of your own front end (default: a short confirmation page)',
    }),
  ),
});

export const LoginUrl = Type.Object({
  url: Type.String({ description: "Lark's authorize page for this sign-in (single use, valid 10 minutes)" }),
  expiresAt: Type.String({ format: 'date-time' }),
});
