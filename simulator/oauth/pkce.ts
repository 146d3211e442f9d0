import { createHash, timingSafeEqual } from 'node:crypto';

/** PKCE (RFC 7636) as Lark's authorize page and v2 token endpoint use it (auth.md §5.1, §5.2). */

export type ChallengeMethod = 'S256' | 'plain';

/** A code_verifier as auth.md §5.2 gives it: 43–128 characters of `[A-Za-z0-9-._~]`. */
export const VERIFIER_SHAPE = /^[A-Za-z0-9\-._~]{43,128}$/;

/** The challenge a client sends for a verifier: base64url(SHA-256(verifier)) without padding for S256. */
export function challengeFor(verifier: string, method: ChallengeMethod = 'S256'): string {
  return method === 'plain' ? verifier : createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** Whether `verifier` answers `challenge` (a malformed verifier never does). */
export function verifierMatches(verifier: string, challenge: string, method: ChallengeMethod): boolean {
  if (!VERIFIER_SHAPE.test(verifier)) return false;
  const a = Buffer.from(challengeFor(verifier, method));
  const b = Buffer.from(challenge);
  return a.length === b.length && timingSafeEqual(a, b);
}
