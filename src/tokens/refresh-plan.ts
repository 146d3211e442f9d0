import { createHash } from 'node:crypto';

/**
 * When to refresh a token, spread so that a burst of mints (many tenants installed at once, or
 * every token minted after an outage) does not come back as a burst of refreshes every two hours.
 *
 * Lark only issues a new token in the last 30 minutes of the current one's life: asked earlier, it
 * hands back the same token (auth.md §4). So a refresh point must lie in a window of lifetime left,
 * here [latest, earliest] = [7, 29] minutes: a minute inside Lark's 30 for clock skew, and 7
 * minutes before expiry so the minute cron (and a lagging tick) still refreshes with 5 to spare.
 *
 * Each token key gets a phase on a grid of period P = 2 h - centre of the window (the cadence of a
 * token refreshed at the centre). A token's natural refresh point is the window's centre; it moves
 * within the window towards its next grid slot:
 *  - the first time (no previous plan known), by its error times W/P (W = window width), which maps
 *    uniformly spread errors onto the whole window: a burst comes back spread over W minutes, the
 *    least any policy can do, since the next refresh must fall inside the window;
 *  - afterwards, by about the same shift again (the distance left divided by the generations it
 *    still needs at that speed, so late cron ticks do not delay it), so every token drifts at a
 *    speed proportional to its distance and all arrive together after about P/W generations
 *    (≈ 5, 8 h), while the ones still drifting stay spread over k·W minutes at generation k;
 *  - once within reach (the shift, or 4 minutes), onto the slot itself; a token on its slot stays
 *    there, its refreshes exactly P apart. Slots are uniform by hash, so the steady state is flat.
 * The previous shift is read back from the stored row (refresh_at - expires_at), so the plan needs
 * no state of its own. Every shift is clamped to the window: safety never depends on the spreading.
 */

/** Lark's token lifetime (auth.md §4: 2 hours); only the grid's period depends on it. */
export const LARK_TOKEN_LIFETIME_SECONDS = 7200;
/** Within this distance of its slot a token snaps onto it (more than a tick's lateness). */
const SETTLE_SECONDS = 240;

export interface RefreshWindow {
  /** Earliest refresh point, as lifetime left (Lark rotates below 30 min). */
  earliestLeftSeconds: number;
  /** Latest refresh point, as lifetime left: no caller is handed a token closer to expiry than this. */
  latestLeftSeconds: number;
}

export const defaultRefreshWindow: RefreshWindow = { earliestLeftSeconds: 29 * 60, latestLeftSeconds: 7 * 60 };

export interface RefreshPlanInput {
  /** The token's identity; its phase is a hash of it. */
  key: string;
  /** When the token was minted (ms since the epoch). */
  nowMs: number;
  /** Lifetime Lark gave the token, in seconds. */
  expireSeconds: number;
  /** The previous token's shift from its window's centre, in seconds, when known. */
  previousShiftSeconds: number | null;
  window: RefreshWindow;
}

export interface RefreshPlan {
  /** Refresh this many seconds after minting. */
  refreshAfterSeconds: number;
  /** Where that lies relative to the window's centre (what the next plan reads back). */
  shiftSeconds: number;
}

const centreOf = (w: RefreshWindow) => (w.earliestLeftSeconds + w.latestLeftSeconds) / 2;

/** A stable fraction in [0, 1) per key. */
export function phaseFraction(key: string, salt: string): number {
  return createHash('sha256').update(`${salt}:${key}`).digest().readUIntBE(0, 6) / 2 ** 48;
}

export function planRefresh(p: RefreshPlanInput): RefreshPlan {
  const { earliestLeftSeconds: early, latestLeftSeconds: late } = p.window;
  const expire = p.expireSeconds;
  if (expire <= early + 60) {
    // Too short for the window (a test's seconds-long token, or one handed back near its end):
    // refresh `late` before expiry, or half way when even that does not fit.
    const margin = Math.min(late, Math.floor(expire / 2));
    return { refreshAfterSeconds: Math.max(1, expire - margin), shiftSeconds: 0 };
  }
  const half = (early - late) / 2;
  const centre = centreOf(p.window);
  const period = LARK_TOKEN_LIFETIME_SECONDS - centre;
  const natural = p.nowMs / 1000 + expire - centre;
  const slot = phaseFraction(p.key, 'refresh') * period;
  let error = (((slot - natural) % period) + period) % period;
  if (error >= period / 2) error -= period;

  const prev = p.previousShiftSeconds;
  let shift: number;
  if (prev === null || Math.abs(prev) > half + 1) shift = (error * 2 * half) / period;
  else if (Math.abs(error) <= Math.max(Math.abs(prev), Math.min(SETTLE_SECONDS, half))) shift = error;
  // Same speed, spread over the generations still needed, so late ticks do not delay the arrival.
  else if (Math.sign(prev) === Math.sign(error)) shift = error / Math.max(1, Math.round(error / prev));
  else shift = (error * 2 * half) / period;
  shift = Math.round(Math.max(-half, Math.min(half, shift)));
  return { refreshAfterSeconds: Math.round(expire - centre + shift), shiftSeconds: shift };
}

/** The shift a stored row was planned with, from its refresh and expiry times; null when it was not planned in the window. */
export function shiftOf(row: { refresh_at: Date | null; expires_at: Date | null }, window: RefreshWindow): number | null {
  if (!row.refresh_at || !row.expires_at) return null;
  const shift = (row.refresh_at.getTime() - row.expires_at.getTime()) / 1000 + centreOf(window);
  return Math.abs(shift) <= (window.earliestLeftSeconds - window.latestLeftSeconds) / 2 + 1 ? shift : null;
}
