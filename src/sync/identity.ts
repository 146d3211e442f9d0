import { Type, type Static } from '@sinclair/typebox';

/**
 * Whose token a connector reads with: the app's (the default; the app must have been given access,
 * e.g. added to a Base), or a signed-in user's (`{ "user": "<open_id>" }`): what that user may see,
 * with that user's token, paced under the same per-tenant budget. The user must have signed in to
 * larksync (GET /auth/lark/login, or a link from GET /api/v1/auth/lark/login-url).
 */
export const Identity = Type.Optional(
  Type.Object(
    {
      user: Type.String({
        pattern: '^ou_[A-Za-z0-9_-]{1,120}$',
        errorMessage: 'identity.user must be the open_id (ou_…) of a user who signed in to larksync',
      }),
    },
    { additionalProperties: false, errorMessage: 'identity is { "user": "<open_id>" } (leave it out to read as the app)' },
  ),
);
export type IdentityType = Static<typeof Identity>;

export const identityUserOf = (config: unknown): string | undefined => {
  const identity = (config as { identity?: { user?: unknown } } | null)?.identity;
  return typeof identity?.user === 'string' ? identity.user : undefined;
};
