import { Type } from '@sinclair/typebox';
import { StringEnum } from './common.js';

export const RegisterAppBody = Type.Object(
  {
    appId: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description: 'cli_... of the self-built app' }),
    appSecret: Type.String({ minLength: 1, maxLength: 256, description: 'Stored sealed; never returned' }),
    domain: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description:
          '"feishu", "lark" or an http(s) origin (scheme, host, port; no path, query or credentials); in production https and a public host only. Defaults to LARK_DOMAIN',
      }),
    ),
  },
  { additionalProperties: false },
);

export const RegisteredApp = Type.Object(
  {
    appId: Type.String(),
    tenantKey: Type.String({ description: 'The tenant the app belongs to, from tenant/v2/tenant/query' }),
    type: StringEnum(['custom']),
  },
  { description: 'Registered (or registered again: the call is idempotent)' },
);
