import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { startStack, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { settleStartupTicket } from '../helpers/events-helpers.js';
import { changedTables } from '../helpers/table-fingerprints.js';
import {
  EventPusher,
  LARK_RETRY_OFFSETS_S,
  captureEventState,
  eventsSettled,
  historyTenants,
  metricTotal,
  replayOnLarkSchedule,
  storeAppHistory,
  upstreamCounts,
  type Delivery,
  type ReplayOptions,
} from '../helpers/event-history.js';

/**
 * Lark delivers at least once: a push it counts as failed (or whose answer was lost) comes again
 * after 15 s, 5 min, 1 h and 6 h with the same uuid / event_id (events.md §7). Replaying a whole
 * processed history that way, compressed to about a second, must change nothing: no row, no
 * status, no job, no upstream call.
 */

/** Lark's schedule at 1/20 000: +15 s -> 0.75 ms, +5 min -> 15 ms, +1 h -> 180 ms, +6 h -> 1.08 s. */
const COMPRESSED: ReplayOptions = {
  msPerSecond: 1 / 20,
  spacingMs: 3,
  // The first retry arrives three times at once, the third twice: concurrent duplicates.
  copies: [3, 1, 2, 1],
};
const COPIES_PER_EVENT = COMPRESSED.copies.reduce((a, b) => a + b, 0);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('replaying stored events on Lark`s retry schedule', () => {
  let stack: Stack;
  let pusher: EventPusher;
  const history = storeAppHistory('rp');
  const historyIds: string[] = [];
  let historyMints = 0;

  beforeAll(async () => {
    stack = await startStack({ encrypt: true });
    await settleStartupTicket(stack);
    await whenReady(stack);
    pusher = new EventPusher(stack);
  });
  afterAll(async () => {
    await stack?.sim.settle();
    await stack?.stop();
  });

  const allStoredIds = async () =>
    (await stack.db.db.selectFrom('lark_events').select('event_id').orderBy('id').execute()).map((r) => r.event_id);

  const acked = (r: Delivery) => r.status === 200 && r.body === '{"msg":"success"}';
  /**
   * Every answer is the first delivery's answer. A copy answered after Lark's 3 s (status 0: a
   * heavily loaded machine) is tolerated, since Lark would simply retry it, but each event must
   * have been acknowledged at least once, or "nothing changed" would prove nothing.
   */
  const expectAcked = (results: Delivery[], ids: string[]): number => {
    expect(results.filter((r) => r.status !== 0 && !acked(r)), 'answers other than the acknowledgement').toEqual([]);
    const ackedIds = new Set(results.filter(acked).map((r) => r.eventId));
    expect(ids.filter((id) => !ackedIds.has(id)), 'events never acknowledged').toEqual([]);
    return results.filter((r) => r.status === 0).length;
  };

  /**
   * A scenario's outcome with its tenant keys and event ids made neutral, so two runs of one
   * history under different tenant keys can be compared.
   */
  async function scenarioView(prefix: string, ids: string[]) {
    const db = stack.db.db;
    const keys = historyTenants(storeAppHistory(prefix));
    const index = (id: string | null) => (id === null ? null : ids.indexOf(id));
    const tenants = await db
      .selectFrom('tenants')
      .select(['tenant_key', 'status', 'status_reason', 'installer_open_id', 'installer_employee_open_id', 'applicants', 'uninstalled_at'])
      .where('tenant_key', 'in', keys)
      .orderBy('tenant_key')
      .execute();
    const audit = await db
      .selectFrom('tenant_audit')
      .select(['tenant_key', 'action', 'event_id', 'detail'])
      .where('tenant_key', 'in', keys)
      .orderBy('id')
      .execute();
    const tokens = await db
      .selectFrom('access_tokens')
      .select(['tenant_key', 'token_hash', 'mint_count', 'last_error_code'])
      .where('kind', '=', 'tenant')
      .where('tenant_key', 'in', keys)
      .orderBy('tenant_key')
      .execute();
    const events = await db
      .selectFrom('lark_events')
      .select(['event_id', 'event_type', 'schema_version', 'status', 'attempts', 'last_error'])
      .where('event_id', 'in', ids)
      .execute();
    const view = {
      tenants: tenants.map((t) => ({ ...t, uninstalled_at: t.uninstalled_at !== null })),
      // Per tenant, in the order applied: tenants' queues run side by side, so only each tenant's own order is defined.
      audit: Object.fromEntries(
        keys.sort().map((k) => [k, audit.filter((a) => a.tenant_key === k).map((a) => ({ action: a.action, event_id: index(a.event_id), detail: a.detail }))]),
      ),
      tokens: tokens.map((t) => ({ ...t, token_hash: t.token_hash !== null })),
      // A ticket is kept unless a newer one is stored already ('ignored'): the simulator's own
      // tickets (at startup, on a resend) may land between the history's, so either is right.
      events: events
        .map((e) => ({ ...e, event_id: index(e.event_id), status: e.event_type === 'app_ticket' && e.status === 'ignored' ? 'processed' : e.status }))
        .sort((a, b) => (a.event_id ?? 0) - (b.event_id ?? 0)),
    };
    return JSON.parse(JSON.stringify(view).replaceAll(`${prefix}-`, 'T-')) as unknown;
  }

  it('a store app`s history, delivered once, is applied once', async () => {
    const before = stack.sim.count(AUTH_PATHS.tenantAccessToken);
    for (const step of history) {
      const id = pusher.create(step);
      historyIds.push(id);
      // Delivered until acknowledged, as Lark does (an answer later than 3 s counts as failed).
      let res = await pusher.send(id);
      for (let retry = 0; retry < 4 && res.status === 0; retry += 1) res = await pusher.send(id);
      expect(acked(res)).toBe(true);
    }
    await waitFor(() => eventsSettled(stack), 20_000, 'the history to be processed');
    await stack.sim.settle();
    historyMints = stack.sim.count(AUTH_PATHS.tenantAccessToken) - before;

    const view = (await scenarioView('rp', historyIds)) as {
      tenants: Array<{ tenant_key: string; status: string }>;
      audit: Record<string, Array<{ action: string }>>;
      events: Array<{ status: string; attempts: number }>;
    };
    expect(view.tenants.map((t) => [t.tenant_key, t.status])).toEqual([
      ['T-alpha', 'uninstalled'],
      ['T-beta', 'paused'],
      ['T-delta', 'uninstalled'],
      ['T-gamma', 'active'],
    ]);
    const actions = (key: string) => view.audit[key]?.map((a) => a.action);
    expect(actions('T-alpha')).toEqual(['installed', 'paused', 'resumed', 'uninstalled']);
    expect(actions('T-beta')).toEqual(['installed', 'paused']);
    expect(actions('T-gamma')).toEqual(['installed', 'uninstalled', 'reinstalled']);
    expect(actions('T-delta')).toEqual(['resumed', 'uninstalled']);
    // Lifecycle events and tickets processed, the other subscriptions' v2 events kept but ignored.
    expect(view.events.map((e) => [e.status, e.attempts])).toEqual(
      history.map((s) => [s.kind === 'v2' ? 'ignored' : 'processed', 1]),
    );
    // One mint per install (beta, gamma, gamma again); alpha's was purged by its uninstall.
    expect(historyMints).toBe(history.filter((s) => s.kind === 'open').length);
  });

  it('replaying every stored event in order, with duplicates at once and interleaved, changes nothing', async () => {
    const ids = await allStoredIds();
    // The startup ticket too: every stored event, not only the ones this file pushed.
    expect(ids.length).toBe(historyIds.length + 1);
    const before = await captureEventState(stack);
    const upstream = upstreamCounts(stack);
    const deduped = await metricTotal(stack, 'larksync_events_deduped_total');
    const received = await metricTotal(stack, 'larksync_events_received_total');
    const processed = await metricTotal(stack, 'larksync_events_processed_total');

    const started = Date.now();
    const results = await replayOnLarkSchedule(pusher, ids, COMPRESSED);
    const replayMs = Date.now() - started;
    const late = expectAcked(results, ids);
    expect(results.length).toBe(ids.length * COPIES_PER_EVENT);
    // Longer than a few worker polls (200 ms): a job queued by mistake would have run by now.
    await sleep(800);
    await waitFor(() => eventsSettled(stack), 10_000, 'quiet');
    await stack.sim.settle();

    const after = await captureEventState(stack);
    expect(changedTables(before.fingerprints, after.fingerprints), 'tables whose content changed').toEqual([]);
    expect(after).toEqual(before);
    expect(upstreamCounts(stack)).toEqual(upstream);
    // Each copy was counted as a duplicate (a late one too, unless it never reached larksync).
    const dedupedNow = await metricTotal(stack, 'larksync_events_deduped_total');
    expect(dedupedNow - deduped).toBeGreaterThanOrEqual(results.length - late);
    expect(dedupedNow - deduped).toBeLessThanOrEqual(results.length);
    expect(await metricTotal(stack, 'larksync_events_received_total')).toBe(received);
    expect(await metricTotal(stack, 'larksync_events_processed_total')).toBe(processed);
    console.log(
      `replay: ${ids.length} stored events x ${COPIES_PER_EVENT} deliveries (retries at +${LARK_RETRY_OFFSETS_S.join('/+')} s ` +
        `compressed to ${LARK_RETRY_OFFSETS_S.map((s) => (s * COMPRESSED.msPerSecond).toFixed(1)).join('/')} ms) in ${replayMs} ms, ` +
        `${late} answered after 3 s`,
    );
  });

  it('redeliveries racing the originals while they are still being processed apply nothing twice', async () => {
    const variant = storeAppHistory('rq');
    // Each install's first mint takes 400 ms, so jobs are mid-flight when their copies arrive.
    stack.sim.injectFault({ path: AUTH_PATHS.tenantAccessToken, delayMs: 400, count: 100 });
    const jobsBefore = (await captureEventState(stack)).jobs.everQueued;
    const mintsBefore = stack.sim.count(AUTH_PATHS.tenantAccessToken);
    const ids: string[] = [];
    const retries: Array<Promise<Delivery[]>> = [];
    let whileUnprocessed = 0;
    const notePending = async (id: string) => {
      const row = await stack.db.db.selectFrom('lark_events').select('status').where('event_id', '=', id).executeTakeFirst();
      if (!row || row.status === 'pending') whileUnprocessed += 1;
    };
    try {
      for (const step of variant) {
        const id = pusher.create(step);
        ids.push(id);
        // Three deliveries of the new event at the same instant; Lark waits for an answer before
        // the tenant's next event, so the next original goes after these, but the retries do not wait.
        const first = await Promise.all([pusher.send(id), pusher.send(id), pusher.send(id)]);
        expectAcked(first, [id]);
        retries.push(replayOnLarkSchedule(pusher, [id], { ...COMPRESSED, beforeSend: notePending }));
      }
      const results = (await Promise.all(retries)).flat();
      expectAcked(results, ids);
      await waitFor(() => eventsSettled(stack), 30_000, 'the racing history to be processed');
      await stack.sim.settle();
    } finally {
      stack.sim.clearFaults();
    }
    console.log(`replay race: ${ids.length} events, ${ids.length * (3 + COPIES_PER_EVENT)} deliveries, ${whileUnprocessed} sent while the original was not yet processed`);
    // The race was real: copies arrived while their original was still queued or being applied.
    expect(whileUnprocessed).toBeGreaterThan(0);

    // Exactly what one delivery of each event gives (the first history, under other tenant keys).
    expect(await scenarioView('rq', ids)).toEqual(await scenarioView('rp', historyIds));
    // New events are queued one job each or several to a job (batches); a copy adds none.
    const queued = (await captureEventState(stack)).jobs.everQueued - jobsBefore;
    expect(queued).toBeGreaterThan(0);
    expect(queued, 'jobs queued for the racing history').toBeLessThanOrEqual(ids.length);
    expect(stack.sim.count(AUTH_PATHS.tenantAccessToken) - mintsBefore, 'tenant token mints').toBe(historyMints);
  });

  it('and replaying everything stored once more, after the race, still changes nothing', async () => {
    const ids = await allStoredIds();
    const before = await captureEventState(stack);
    const upstream = upstreamCounts(stack);
    const results = await replayOnLarkSchedule(pusher, ids, COMPRESSED);
    expectAcked(results, ids);
    await sleep(800);
    await waitFor(() => eventsSettled(stack), 10_000, 'quiet');
    await stack.sim.settle();
    const after = await captureEventState(stack);
    expect(changedTables(before.fingerprints, after.fingerprints)).toEqual([]);
    expect(after).toEqual(before);
    expect(upstreamCounts(stack)).toEqual(upstream);
  });
});
