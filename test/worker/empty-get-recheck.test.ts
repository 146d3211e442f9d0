import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { EVENT_SHARDS, eventContext, storeEventBatch, type NewStoredEvent } from '../../src/events/events.repository.js';
import { startWorker, type WorkerHandle } from '../../src/worker/worker.js';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import { newId, settleStartupTicket, v2Body } from '../helpers/events-helpers.js';
import { waitFor } from '../helpers/wait.js';

/**
 * graphile-worker's get_job locks the row of every free named queue before it picks a job, so a
 * get_job running at the same time as another runner's (each "job added" notification nudges all
 * three runners of a process at once) finds every queue locked and comes back empty. The runner
 * the job is for looks again a few ms later (src/worker/empty-get-recheck.ts) instead of sleeping
 * until its next poll (2 s). Here the other runner's get_job is played by a transaction holding
 * the queue rows, as that get_job holds them, while an event is stored and its shard's drain job
 * queued; it lets go 150 ms later. Fails without the recheck (the job waits for the poll).
 */
describe("a runner whose get_job missed a job because another runner's held the queues", () => {
  let stack: Stack;
  let worker: WorkerHandle | undefined;

  beforeAll(async () => {
    stack = await startStack({ encrypt: true, start: { worker: false } });
    await settleStartupTicket(stack);
    // Polling every 10 s (production: 2 s), so that a job left to the poll waits seconds whatever
    // the phase of the runners' timers when it is queued; no maintenance round (it collects empty
    // queue rows).
    worker = await startWorker(stack.larksync.services, { cron: false, pollInterval: 10_000, maintenanceMs: 600_000 });
    // The runners' first get_job calls are done: every worker is idle, waiting for a nudge or its poll.
    await new Promise((r) => setTimeout(r, 500));
  });
  afterAll(async () => {
    await worker?.stop();
    await stack?.stop();
  });

  it('takes the job within a few hundred ms of the queues being free, not at its next poll', async () => {
    // Every shard's queue row exists (add_job then only finds it), so the transaction below can hold it.
    await sql`insert into graphile_worker._private_job_queues (queue_name)
              select 'lark-events:' || g::text from generate_series(0, ${EVENT_SHARDS - 1}::int) g
              on conflict (queue_name) do nothing`.execute(stack.db.db);
    const body = v2Body('recheck.test_v1', {}, { tenantKey: `t-recheck-${newId()}` });
    const event: NewStoredEvent = {
      eventId: body.header.event_id,
      appId: STORE_APP.appId,
      schemaVersion: 'v2',
      eventType: 'recheck.test_v1',
      tenantKey: body.header.tenant_key,
      payloadSealed: stack.larksync.services.sealer.seal(JSON.stringify(body), eventContext(body.header.event_id)),
    };
    const status = async () =>
      (await stack.db.db.selectFrom('lark_events').select('status').where('event_id', '=', event.eventId).executeTakeFirst())?.status;

    const holder = await stack.db.pool.connect();
    let freedAt = 0;
    try {
      await holder.query('begin');
      await holder.query('select id from graphile_worker._private_job_queues for update');
      // Stored and its drain job queued: the urgent runner is nudged, and its get_job finds the
      // shard's queue row locked.
      await storeEventBatch(stack.db.pool, [event]);
      await new Promise((r) => setTimeout(r, 150));
      expect(await status()).toBe('pending');
      await holder.query('commit');
      freedAt = Date.now();
    } finally {
      holder.release();
    }
    await waitFor(async () => (await status()) !== 'pending', 15_000, 'the event handled');
    const waited = Date.now() - freedAt;
    // Left to the runners' next poll, this is about 9 s.
    expect(waited).toBeLessThan(1_000);
    expect(await status()).toBe('ignored');
  });
});
