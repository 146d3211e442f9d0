import { str, type EventHandler } from './types.js';

/**
 * `auth.user_access_token.revoked_v4` (user-oauth.md §7): the user's token was revoked in Lark.
 * The grant is marked `revoked` and its tokens dropped; only a new sign-in brings it back. The
 * reason values are not documented (unconfirmed), so they are stored as sent, bounded.
 */
export const handleUserTokenRevoked: EventHandler = async (event, ctx) => {
  const openId = str(event.open_id);
  const appId = ctx.appId ?? ctx.services.config.storeApp?.appId;
  if (!openId || !appId) return 'ignored';
  const reason = `revoked in Lark${str(event.revoke_reason) ? ` (${str(event.revoke_reason)!.slice(0, 100)})` : ''}: sign in again to renew it`;
  const n = await ctx.services.grants.revoked(appId, ctx.tenantKey, openId, reason);
  return n > 0 ? 'processed' : 'ignored';
};
