import { createHash, randomBytes } from 'node:crypto';

/**
 * PKCE (RFC 7636) with S256: the verifier stays with larksync (sealed with the sign-in's state),
 * only its hash goes to Lark's authorize page, so a code intercepted on its way back cannot be
 * exchanged by anyone else.
 */
export function newVerifier(): string {
  // 48 random bytes: 64 characters of [A-Za-z0-9-_], inside RFC 7636's 43 to 128.
  return randomBytes(48).toString('base64url');
}

export function challengeOf(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}
