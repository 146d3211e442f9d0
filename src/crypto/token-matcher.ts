import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/**
 * A constant-time check of a presented bearer token. Both sides are hashed first, so the
 * comparison takes the same time whatever the presented value's content or length: a plain
 * compare would answer early on a length mismatch and tell a guesser how long the token is.
 */
export function tokenMatcher(expected: string): (given: string) => boolean {
  const want = digest(expected);
  return (given) => timingSafeEqual(digest(given), want);
}
