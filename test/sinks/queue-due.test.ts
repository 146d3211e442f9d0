import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELIVER_TASK } from '../../src/sinks/sinks.service.js';
import { drain, larkToken, seedTenant, sinkFixture, startRagflow, writeDoc, type Fixture } from './sink-fixture.js';

// Who starts a sink's delivery: after a docs page or an event's change commits, queueDue() asks
// which sinks have something to do. A change committed while an older transaction of the same
// database is still open lies above the feed's snapshot horizon for a while; that sink must still
// be queued (its delivery waits for the horizon itself). Were it skipped, nothing would ask again
// until the minute cron: a document edited through an event reached the knowledge base a minute
// late (seen in CI, where other work keeps transactions open).

const TENANT = 'tenant-queue-due';

describe('queueing sink deliveries', () => {
  let fx: Fixture;
  let ragflow: Awaited<ReturnType<typeof startRagflow>>;
  beforeAll(async () => {
    fx = await sinkFixture();
    ragflow = await startRagflow();
    await seedTenant(fx.db.db, TENANT, ['kb']);
    await fx.sinks.put(TENANT, 'kb', { type: 'ragflow', url: ragflow.url, apiKey: ragflow.apiKey, datasetId: ragflow.datasetId });
  });
  afterAll(async () => {
    await ragflow?.fake.stop();
    await fx?.stop();
  });

  const queuedJobs = async () =>
    (await sql<{ n: number }>`select count(*)::int as n from graphile_worker.jobs where task_identifier = ${DELIVER_TASK}`.execute(fx.db.db)).rows[0]!.n;

  it('queues a sink whose change committed behind a transaction still open, and delivers it once that ends', async () => {
    const token = larkToken();
    await writeDoc(fx.db.db, TENANT, { token, title: 'Handbook', markdown: 'first version' });
    await drain(fx, TENANT, 'kb');
    await sql`delete from graphile_worker._private_jobs`.execute(fx.db.db);
    expect(await fx.sinks.queueDue()).toBe(0);

    let release!: () => void;
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    // An older transaction with an xid, open on another connection of the same database.
    const older = fx.db.db.transaction().execute(async (trx) => {
      await sql`select pg_current_xact_id()`.execute(trx);
      holding();
      await new Promise<void>((r) => (release = r));
    });
    await held;
    try {
      await writeDoc(fx.db.db, TENANT, { token, title: 'Handbook', markdown: 'second version' });
      expect(await fx.sinks.queueDue()).toBe(1);
      expect(await queuedJobs()).toBe(1);
    } finally {
      release();
      await older;
    }
    await drain(fx, TENANT, 'kb');
    const docs = ragflow.fake.documents(ragflow.datasetId);
    expect(docs).toHaveLength(1);
    expect(docs[0]!.content.toString()).toBe('second version');
  });
});
