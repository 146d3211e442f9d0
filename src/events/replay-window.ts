/**
 * How far a push's signature timestamp may lie from now, and how long event ids are kept so that
 * anything inside that window is a de-duplicated no-op when it comes again.
 *
 * Lark retries a failed push at +15 s, +5 min, +1 h and +6 h (events.md §7), so a retry can arrive
 * about 7.1 h after the first attempt. Whether a retry is signed afresh or carries the first
 * attempt's X-Lark-Request-Timestamp is not documented (unconfirmed). The tolerant choice: accept
 * timestamps up to 8 h old, so even a retry that reuses the original timestamp gets in, and at
 * most 5 min ahead (clock skew; nothing Lark sends is signed in the future).
 *
 * The price of the wide window is that a captured push can be replayed for 8 h. That is harmless
 * only while its event id is still stored: the replay is then acknowledged and changes nothing.
 * Worst case for how long that takes: Lark's last retry, re-signed ~7.1 h after the first attempt
 * (which is when the id was stored), replayed 8 h later, is 15.1 h after the id was stored; plus
 * the 5 min ahead. Ids are therefore kept for at least a day, whatever the retention setting.
 */
export const SIGNATURE_MAX_AGE_SECONDS = 8 * 60 * 60;
export const SIGNATURE_MAX_AHEAD_SECONDS = 5 * 60;

/** Lark's retries span ~7.1 h after the first attempt (events.md §7). */
const LARK_RETRY_SPAN_SECONDS = Math.ceil(7.1 * 60 * 60);

/** The shortest time a stored event id (processed or not) is kept; purges never go below it. */
export const EVENT_ID_MIN_RETENTION_SECONDS = 24 * 60 * 60;

// The day must cover the worst case above; fails at import (and so in every test) if the window grows past it.
if (EVENT_ID_MIN_RETENTION_SECONDS < LARK_RETRY_SPAN_SECONDS + SIGNATURE_MAX_AGE_SECONDS + SIGNATURE_MAX_AHEAD_SECONDS) {
  throw new Error('EVENT_ID_MIN_RETENTION_SECONDS must outlast the signature window plus the span of Lark retries');
}
