/**
 * User sign-in for the simulator (../shared/lark/auth.md §5, user-oauth.md):
 * - user-auth.ts  UserAuth: authorize requests, codes, grants, rotation, revocation, counters, faults;
 * - users.ts      SimUserRegistry: who can sign in (contact directory + registered users), tenant admins;
 * - page.ts       the authorize page's HTML (user picker) and error page;
 * - pkce.ts       PKCE S256 / plain;
 * - routes.ts     authorize page, consent, v2 token endpoint, user_info, is_user_admin.
 */
export {
  AuthorizePageError,
  UserAuth,
  defaultOAuthOptions,
  type AuthorizeQuery,
  type AuthorizeRequest,
  type OAuthOptions,
  type SimGrant,
  type TokenCallFilter,
  type UserCaller,
  type UserRef,
  type UserTokenCall,
} from './user-auth.js';
export { SimUserRegistry, type NewSimUser, type SimLarkUser, type UserDirectory } from './users.js';
export { CONSENT_PATH, userField } from './page.js';
export { VERIFIER_SHAPE, challengeFor, verifierMatches, type ChallengeMethod } from './pkce.js';
export { OAUTH_PATHS, registerOAuthRoutes } from './routes.js';
