import { Type } from '@sinclair/typebox';
import { definePhase, type SyncContext } from '../../sync/sync-module.js';
import { SyncError } from '../../sync/sync-errors.js';
import type { StreamRow } from '../../sync/streams.js';
import type { AttendanceConfigType } from './config.js';
import { checkListingComplete, listStep, startListing, type Listing } from './employees.js';
import type { LarkUserFlow, LarkUserFlowPage } from './lark-types.js';

const DAY = 86_400;
/** user_flows/query takes at most 50 ids (attendance.md §1). */
export const MAX_USER_IDS = 50;
/**
 * One day per call. Lark documents no maximum span for user_flows/query (unconfirmed) and the
 * answer is not paginated, so a wide window risks a rejected or silently capped answer for 50
 * busy people; a day of 50 people is a few hundred punches at most. It costs lookbackDays calls
 * per 50 users per run, which the 50/s limit absorbs (1,000 users × 7 days = 140 calls, ~3 s).
 */
export const WINDOW_SECONDS = DAY;

interface State {
  v: 1;
  /**
   * The long-lived cursor: the end (Unix s, exclusive) of the last range every user was read
   * for. Carried unchanged through a run and moved to `until` only when the run completes, so a
   * failed run's successor still starts from the last complete one.
   */
  cursor: number | null;
  /** This run's range [from, until), Unix seconds. */
  from: number;
  until: number;
  listing: Listing;
  listingDone: boolean;
  /** ids listed but not queried yet (fewer than 50 until the listing ends) */
  pending: string[];
  /** the batch being read, one window per page */
  batch: string[];
  windowStart: number;
}

export function flowRow(f: LarkUserFlow): StreamRow | undefined {
  if (!f.record_id) return undefined;
  const secs = f.check_time !== undefined && /^\d+$/.test(f.check_time) ? Number(f.check_time) : undefined;
  return {
    recordKey: f.record_id,
    raw: f,
    columns: {
      record_id: f.record_id,
      user_id: f.user_id ?? null,
      creator_id: f.creator_id ?? null,
      // ISO text, not a Date: the content hash serialises columns, and a Date hashes as `{}`.
      check_time: secs === undefined ? null : new Date(secs * 1000).toISOString(),
      location_name: f.location_name ?? null,
      type: typeof f.type === 'number' ? f.type : null,
      is_field: typeof f.is_field === 'boolean' ? f.is_field : null,
      is_wifi: typeof f.is_wifi === 'boolean' ? f.is_wifi : null,
    },
  };
}

async function queryFlows(ctx: SyncContext<AttendanceConfigType>, ids: string[], from: number, to: number): Promise<LarkUserFlow[]> {
  try {
    const data = await ctx.lark.call<LarkUserFlowPage>('attendance.user_flows.query', {
      method: 'POST',
      path: '/open-apis/attendance/v1/user_flows/query',
      query: { employee_type: ctx.config.employeeType },
      body: { user_ids: ids, check_time_from: String(from), check_time_to: String(to) },
    });
    return data.user_flow_results ?? [];
  } catch (err) {
    // A refused request is most often a bad id (1220004 likely fails the whole call; unconfirmed),
    // which Lark's message may not name: show what was sent.
    if (err instanceof SyncError && err.errorClass === 'invalid_config') {
      const shown = ids.length > 5 ? `${ids.slice(0, 5).join(', ')}, ... (${ids.length} ids)` : ids.join(', ');
      throw new SyncError('invalid_config', `${err.message} (sent ${ctx.config.employeeType} ${shown}, check_time ${from}..${to}; check employeeIds and employeeType)`);
    }
    throw err;
  }
}

/**
 * Flows are read per batch of up to 50 ids over the run's range, one day window per call,
 * interleaved with the listing: ids collect in `pending` until 50 are there (or the listing
 * ends), so batches are full even though Contact hands out users a department at a time.
 * A user in two departments can land in two batches; that only costs calls, since the same
 * record_id upserts to the same row with the same hash.
 */
export const flowsPhase = definePhase<State, AttendanceConfigType>({
  name: 'attendance_flows',
  stateSchema: Type.Object({
    v: Type.Literal(1),
    cursor: Type.Union([Type.Number(), Type.Null()]),
    from: Type.Number(),
    until: Type.Number(),
    listing: Type.Object({}, { additionalProperties: true }),
    listingDone: Type.Boolean(),
    pending: Type.Array(Type.String()),
    batch: Type.Array(Type.String()),
    windowStart: Type.Number(),
  }),
  init(ctx, previous) {
    const until = Math.floor(Date.now() / 1000);
    const cursor = previous?.v === 1 ? previous.cursor : null;
    // Re-read the lookback window every run (corrections add flows to past days), and further
    // back when the last complete run is older than that, so an outage leaves no gap.
    const lookbackStart = until - ctx.config.lookbackDays * DAY;
    const from = cursor === null ? lookbackStart : Math.min(cursor, lookbackStart);
    return { v: 1, cursor, from, until, listing: startListing(ctx.config), listingDone: false, pending: [], batch: [], windowStart: from };
  },
  async readPage(ctx, state) {
    let s = state;
    for (;;) {
      if (s.batch.length > 0) {
        const end = Math.min(s.windowStart + WINDOW_SECONDS, s.until);
        // check_time_to is inclusive (Lark's example window ends at ...599), hence end - 1.
        const flows = await queryFlows(ctx, s.batch, s.windowStart, end - 1);
        const rows = flows.map(flowRow).filter((r): r is StreamRow => r !== undefined);
        const next: State = end >= s.until ? { ...s, batch: [], windowStart: s.from } : { ...s, windowStart: end };
        return { rows: { attendance_flows: rows }, state: next, done: false };
      }
      if (s.pending.length >= MAX_USER_IDS || (s.listingDone && s.pending.length > 0)) {
        s = { ...s, batch: s.pending.slice(0, MAX_USER_IDS), pending: s.pending.slice(MAX_USER_IDS), windowStart: s.from };
        continue;
      }
      if (s.listingDone) {
        checkListingComplete(ctx, s.listing);
        // Flows are immutable records (a correction is a new record), so nothing is swept.
        return { rows: {}, state: { ...s, cursor: s.until }, done: true };
      }
      const step = await listStep(ctx, s.listing);
      const pending = [...s.pending];
      for (const id of step.ids) if (!pending.includes(id)) pending.push(id);
      s = { ...s, listing: step.listing, listingDone: step.finished, pending };
      if (step.called) return { rows: {}, state: s, done: false };
    }
  },
});
