import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DbHandle } from '../../src/db/connect.js';
import { storeEventBatch, type NewStoredEvent } from '../../src/events/events.repository.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * Storing a batch of pushes into a sleeping shard queues its drain job through graphile-worker's
 * add_jobs. Its plan must not
 * read the backlog of pending jobs: a connection that planned it on an empty jobs table (a fresh
 * or drained one) would otherwise scan every queued job on every batch, so the endpoint slowed
 * down as its backlog grew. Counted with Postgres's own per-table statistics.
 */

const BACKLOG = 10_000;

function pushes(n: number, tag: string): NewStoredEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    eventId: `${tag}-${i}`,
    appId: 'cli_backlog',
    schemaVersion: 'v1',
    eventType: 'app_ticket',
    tenantKey: `t-backlog-${i % 16}`,
    payloadSealed: Buffer.from('sealed'),
  }));
}

/** Every shard asleep, as when their drain jobs have just started: the next batch queues jobs. */
async function sleepAll(client: { query(text: string): Promise<unknown> }): Promise<void> {
  await client.query('update lark_event_shards set awake = false');
}

describe('queueing the jobs of a stored batch', () => {
  let db: TestDatabase;
  let session: DbHandle;

  beforeAll(async () => {
    db = await createTestDatabase();
    // One connection, so the plan it makes on the empty table is the one used later.
    session = connectDatabase(db.url, { max: 1 });
    await sql`vacuum analyze graphile_worker._private_jobs`.execute(db.db);
    // Postgres plans a cached statement anew for its first five runs, then settles on one plan.
    for (let batch = 0; batch < 10; batch += 1) {
      await sleepAll(session.pool);
      await storeEventBatch(session.pool, pushes(20, `first-${batch}`));
    }
    await sql`select count(*) from graphile_worker.add_jobs((
      select array_agg(row('drain_lark_events', json_build_object('shard', g % 8), 'lark-events:' || (g % 8), null, 25, null, null, null)::graphile_worker.job_spec)
        from generate_series(1, ${BACKLOG}) g))`.execute(session.db);
  });
  afterAll(async () => {
    await session?.close();
    await db?.drop();
  });

  it(`reads none of ${BACKLOG} pending jobs, on a connection that first queued into an empty table`, async () => {
    const client = await session.pool.connect();
    try {
      await client.query('begin');
      // This view also holds the session's counts not yet flushed, so compare before and after.
      const counts = async () => {
        const { rows } = await client.query<{ seq_tup_read: string; n_tup_ins: string }>(
          `select seq_tup_read, n_tup_ins from pg_stat_xact_user_tables where relid = 'graphile_worker._private_jobs'::regclass`,
        );
        return { read: Number(rows[0]?.seq_tup_read), inserted: Number(rows[0]?.n_tup_ins) };
      };
      const before = await counts();
      for (let batch = 0; batch < 10; batch += 1) {
        await sleepAll(client);
        await storeEventBatch(client, pushes(20, `measured-${batch}`));
      }
      const after = await counts();
      // The batches did queue jobs (one per shard woken), and read no queued job to do so.
      expect(after.inserted - before.inserted).toBeGreaterThanOrEqual(10);
      expect(after.read - before.read).toBe(0);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});
