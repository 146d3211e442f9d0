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
    verificationToken: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description:
          "The app console's Verification Token (Events & callbacks → Encryption strategy). With it, the app's pushes are taken at POST /lark/events/{appId}: change events for its tenant. Stored sealed; never returned. Registering again without it keeps the one stored",
      }),
    ),
    encryptKey: Type.Optional(
      Type.Union(
        [
          Type.String({ minLength: 1, maxLength: 256 }),
          Type.Null(),
        ],
        {
          description:
            "The app console's Encrypt Key (recommended): its pushes must then be signed and encrypted with it. Stored sealed; never returned. Registering again without it keeps the one stored; null removes it (the console's Encrypt Key was cleared: pushes come plain, checked by the Verification Token)",
        },
      ),
    ),
  },
  { additionalProperties: false },
);

export const RegisteredApp = Type.Object(
  {
    appId: Type.String(),
    tenantKey: Type.String({ description: 'The tenant the app belongs to, from tenant/v2/tenant/query' }),
    type: StringEnum(['custom']),
    eventsPath: Type.Optional(
      Type.String({ description: "Present once the app's Verification Token is registered: the path (on PUBLIC_URL) to set as the app's event request URL" }),
    ),
  },
  { description: 'Registered (or registered again: the call is idempotent)' },
);
