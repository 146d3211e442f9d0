import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { eventContext, storeEventBatch, wakeStalledShards, type NewStoredEvent } from '../../src/events/events.repository.js';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import { awakeShards, drainJobs, eventsWithoutJob, newId, settleStartupTicket, v2Body } from '../helpers/events-helpers.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Stored events are handled per shard by drain jobs: a batch wakes its shards (queueing a job for
 * a shard that was asleep), and a drain job reads the shard's pending events until a read comes
 * back empty, then puts its shard to sleep and reads once more. These tests drive that protocol
 * directly against the database, with the worker off so that nothing else drains.
 */
describe('event shards and their drain jobs', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: true, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** Events of a type larksync does not handle (they are marked ignored), sealed as the endpoint seals them. */
  function events(tenantKey: string, n: number): NewStoredEvent[] {
    return Array.from({ length: n }, () => {
      const body = v2Body('drain.test_v1', {}, { tenantKey });
      return {
        eventId: body.header.event_id,
        appId: STORE_APP.appId,
        schemaVersion: 'v2' as const,
        eventType: 'drain.test_v1',
        tenantKey,
        payloadSealed: stack.larksync.services.sealer.seal(JSON.stringify(body), eventContext(body.header.event_id)),
      };
    });
  }

  async function statuses(ids: string[]) {
    const rows = await stack.db.db.selectFrom('lark_events').select(['event_id', 'status']).where('event_id', 'in', ids).execute();
    return rows.map((r) => r.status);
  }

  async function shardOf(eventId: string): Promise<number> {
    const row = await stack.db.db.selectFrom('lark_events').select('shard').where('event_id', '=', eventId).executeTakeFirstOrThrow();
    return row.shard!;
  }

  const drain = (shard: number, budgetMs?: number) => stack.larksync.services.events.drainShard(stack.larksync.services, shard, { budgetMs });

  it('a drain job that starts while a batch is storing into its shard waits for the batch, then reads it', async () => {
    const [first] = events('t-drain-race', 1);
    await storeEventBatch(stack.db.pool, [first!]);
    const shard = await shardOf(first!.eventId);
    expect(await awakeShards(stack.db)).toContain(shard);
    const jobsBefore = (await drainJobs(stack.db)).length;

    // A second batch into the same, awake, shard, not yet committed: it queues no job of its own.
    const client = await stack.db.pool.connect();
    const second = events('t-drain-race', 3);
    try {
      await client.query('begin');
      await storeEventBatch(client, second);
      let finished = false;
      const draining = drain(shard).then(() => {
        finished = true;
      });
      await new Promise((r) => setTimeout(r, 300));
      // Putting the shard to sleep waits for the open batch's lock.
      expect(finished).toBe(false);
      await client.query('commit');
      await draining;
    } finally {
      client.release();
    }
    // The drain read the batch that committed while it waited.
    expect(await statuses([first!.eventId, ...second.map((e) => e.eventId)])).toEqual(['ignored', 'ignored', 'ignored', 'ignored']);
    expect((await drainJobs(stack.db)).length).toBe(jobsBefore);
    expect(await awakeShards(stack.db)).not.toContain(shard);
  });

  it('a batch into a shard whose drain job has started wakes the shard again, queueing a new job', async () => {
    const [e] = events('t-drain-again', 1);
    await storeEventBatch(stack.db.pool, [e!]);
    const shard = await shardOf(e!.eventId);
    await drain(shard);
    const jobsBefore = (await drainJobs(stack.db)).filter((j) => j.shard === shard).length;
    const later = events('t-drain-again', 2);
    await storeEventBatch(stack.db.pool, later);
    expect(await awakeShards(stack.db)).toContain(shard);
    expect((await drainJobs(stack.db)).filter((j) => j.shard === shard).length).toBe(jobsBefore + 1);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
  });

  /**
   * Stores `later` while a drain of `first`'s shard is held up handling `first` (its row is locked
   * elsewhere, so recording its outcome waits), then lets the drain finish.
   */
  async function storeDuringDrain(tenant: string, othersWaiting?: () => Promise<boolean>) {
    const [first] = events(tenant, 1);
    await storeEventBatch(stack.db.pool, [first!]);
    const shard = await shardOf(first!.eventId);
    const later = events(tenant, 2);
    const client = await stack.db.pool.connect();
    let jobsBefore = 0;
    let jobsMeanwhile = 0;
    try {
      await client.query('begin');
      await client.query('select 1 from lark_events where event_id = $1 for update', [first!.eventId]);
      const draining = stack.larksync.services.events.drainShard(stack.larksync.services, shard, { othersWaiting });
      await waitFor(
        async () =>
          (
            await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
                                      where datname = current_database() and wait_event_type = 'Lock' and query ilike '%update "lark_events"%'`.execute(stack.db.db)
          ).rows[0]!.n > 0,
        10_000,
        'the drain waiting on the held event',
      );
      jobsBefore = (await drainJobs(stack.db)).filter((j) => j.shard === shard).length;
      await storeEventBatch(stack.db.pool, later);
      jobsMeanwhile = (await drainJobs(stack.db)).filter((j) => j.shard === shard).length;
      await client.query('commit');
      await draining;
    } finally {
      client.release();
    }
    return { first: first!, later, shard, jobsBefore, jobsMeanwhile };
  }

  it('events stored while a drain handles earlier ones are handled by that drain, and queue no job', async () => {
    // A job they queued would wait behind the running one in the shard's queue, and graphile-worker
    // takes it only at an idle runner's next poll (2 s): the last events of a burst waited that long.
    const { first, later, shard, jobsBefore, jobsMeanwhile } = await storeDuringDrain('t-drain-loop');
    // The shard stayed awake while its drain ran: storing into it queued nothing.
    expect(jobsMeanwhile).toBe(jobsBefore);
    expect(await statuses([first.eventId, ...later.map((e) => e.eventId)])).toEqual(['ignored', 'ignored', 'ignored']);
    // Asleep again once its drain found it empty: the next event queues a job.
    expect(await awakeShards(stack.db)).not.toContain(shard);
    const next = events('t-drain-loop', 1);
    await storeEventBatch(stack.db.pool, next);
    expect(await awakeShards(stack.db)).toContain(shard);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
    await drain(shard);
    expect(await statuses(next.map((e) => e.eventId))).toEqual(['ignored']);
  });

  it('a drain whose slot another job waits for hands the events stored meanwhile to a fresh job', async () => {
    let asked = 0;
    const { first, later, shard } = await storeDuringDrain('t-drain-yield', async () => {
      asked += 1;
      return true;
    });
    expect(asked).toBe(1);
    expect(await statuses([first.eventId])).toEqual(['ignored']);
    expect(await statuses(later.map((e) => e.eventId))).toEqual(['pending', 'pending']);
    expect(await awakeShards(stack.db)).toContain(shard);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
    await drain(shard);
    expect(await statuses(later.map((e) => e.eventId))).toEqual(['ignored', 'ignored']);
  });

  it('a shard with more pending events than one job takes queues a fresh job after the first 500', async () => {
    const many = events('t-drain-many', 620);
    for (let i = 0; i < many.length; i += 200) await storeEventBatch(stack.db.pool, many.slice(i, i + 200));
    const shard = await shardOf(many[0]!.eventId);
    const pending = async () =>
      (await sql<{ n: number }>`select count(*)::int as n from lark_events where shard = ${shard} and status = 'pending'`.execute(stack.db.db)).rows[0]!.n;
    const before = await pending();
    // No time budget here: under CI's load 500 events took over the 2 s one (493 handled), and
    // this case is about the count (the budget has its own case below).
    await drain(shard, Number.POSITIVE_INFINITY);
    expect(await pending()).toBe(before - 500);
    // The rest is not stranded: the shard is awake with a job queued for it.
    expect(await awakeShards(stack.db)).toContain(shard);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
    await drain(shard);
    expect((await statuses(many.map((e) => e.eventId))).every((s) => s === 'ignored')).toBe(true);
  });

  it('a drain past its time budget leaves the rest pending, in order, for a fresh job queued behind other work', async () => {
    // A drain shares the urgent runner's slots with the minute's token refresh: it must not hold
    // one for as long as 500 events take under load.
    const batch = events('t-drain-budget', 40);
    await storeEventBatch(stack.db.pool, batch);
    const shard = await shardOf(batch[0]!.eventId);
    const jobsBefore = (await drainJobs(stack.db)).filter((j) => j.shard === shard).length;
    // A budget already spent: the job takes up one event (it always makes progress) and stops.
    await drain(shard, 0);
    const after = await statuses(batch.map((e) => e.eventId));
    expect(after.filter((x) => x === 'ignored')).toHaveLength(1);
    const first = await stack.db.db.selectFrom('lark_events').select('status').where('event_id', '=', batch[0]!.eventId).executeTakeFirstOrThrow();
    expect(first.status).toBe('ignored');
    expect(await awakeShards(stack.db)).toContain(shard);
    expect((await drainJobs(stack.db)).filter((j) => j.shard === shard).length).toBe(jobsBefore + 1);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
    await drain(shard);
    expect((await statuses(batch.map((e) => e.eventId))).every((x) => x === 'ignored')).toBe(true);
  });

  it('the minute sweep queues a drain job for a shard whose events wait with no job (a lost job)', async () => {
    const stalled = events('t-drain-lost', 2);
    await storeEventBatch(stack.db.pool, stalled);
    const shard = await shardOf(stalled[0]!.eventId);
    // The job is lost (deleted by hand) while the shard still says one is queued.
    await sql`delete from graphile_worker._private_jobs j using graphile_worker._private_tasks t
               where t.id = j.task_id and t.identifier = 'drain_lark_events' and (j.payload->>'shard')::int = ${shard}`.execute(stack.db.db);
    expect(await eventsWithoutJob(stack.db)).toEqual(expect.arrayContaining(stalled.map((e) => e.eventId)));
    // Events younger than the threshold are left alone: their job may simply not have run yet.
    expect(await wakeStalledShards(stack.db.db, 60)).toEqual([]);
    await sql`update lark_events set received_at = now() - interval '2 minutes' where shard = ${shard} and status = 'pending'`.execute(stack.db.db);
    expect(await wakeStalledShards(stack.db.db, 60)).toEqual([shard]);
    // Sweeping again keeps one sweep job per shard.
    await wakeStalledShards(stack.db.db, 60);
    expect((await drainJobs(stack.db)).filter((j) => j.shard === shard)).toHaveLength(1);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
  });

  it('processes stored events once a worker runs, across several shards', async () => {
    const keys = Array.from({ length: 12 }, () => `t-drain-${newId().slice(0, 8)}`);
    const batch = keys.flatMap((k) => events(k, 3));
    await storeEventBatch(stack.db.pool, batch);
    const replica = await stack.startReplica({ worker: true });
    try {
      await waitFor(async () => (await statuses(batch.map((e) => e.eventId))).every((s) => s === 'ignored'), 15_000, 'every stored event handled');
      await waitFor(async () => (await awakeShards(stack.db)).length === 0, 10_000, 'every shard asleep');
    } finally {
      await replica.stop();
    }
  });
});
