import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import pino from 'pino';
import { MODULES } from '../../src/connectors/index.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { commitPage } from '../../src/sync/engine/commit-page.js';
import { preparePage } from '../../src/sync/engine/prepare-page.js';
import { RunLease } from '../../src/sync/engine/run-lease.js';
import { nextReadSeq } from '../../src/sync/read-seq.js';
import { countingKysely, createTestDatabase, type TestDatabase } from '../helpers/db.js';

// A sync page's transaction, in round trips: at 50 pages a second every statement of it counts.
// The run's change counts ride in the statement that writes the page's records.changed.
describe("a sync page's commit", () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await sql`insert into webhooks (url, event_types, secret_sealed) values ('https://example.com/hook', array['records.changed'], '\\x00'::bytea)`.execute(db.db);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('writes the rows, claims the page, and adds the run counts with the webhook outbox in one statement', async () => {
    const leaseId = '6f1c2f7e-1111-4222-8333-444455556666';
    const run = await sql<{ id: string }>`
      insert into sync_runs (tenant_key, module, mode, trigger, status, lease_id)
      values ('t-page', 'contact', 'full', 'api', 'running', ${leaseId}::uuid) returning id::text`.execute(db.db);
    const runId = run.rows[0]!.id;
    const counted = countingKysely(db, /./);
    const lease = (await RunLease.claim(counted.db, runId, leaseId))!;
    const user = (id: string) => ({ recordKey: id, raw: { open_id: id, name: id }, columns: { open_id: id, union_id: null, user_id: null, name: id, department_ids: [] } });
    const ready = await preparePage(
      { rows: { contact_users: [user('ou_1'), user('ou_2')] }, state: { cursor: 'next' }, done: false, readSeq: await nextReadSeq(db.db) },
      MODULES.contact!.streams,
    );
    counted.seen.length = 0;
    await commitPage({ db: counted.db, log: pino({ level: 'silent' }), metrics: createMetrics() }, lease, 'users', [], ready, undefined);
    // begin, the rows, the claim with its checkpoint, the counts with records.changed, commit (the
    // counts were a statement of their own).
    expect(counted.seen).toHaveLength(5);
    expect(/update sync_runs set deletions_confirmed/.test(counted.seen[3]!) && /insert into webhook_events/.test(counted.seen[3]!)).toBe(true);
    const after = await sql<{ rows_changed: number; pages: number }>`select rows_changed, pages from sync_runs where id = ${runId}`.execute(db.db);
    expect(after.rows[0]).toEqual({ rows_changed: 2, pages: 1 });
    const announced = await sql<{ data: { stream: string; count: number } }>`select data from webhook_events where tenant_key = 't-page'`.execute(db.db);
    expect(announced.rows.map((r) => [r.data.stream, r.data.count])).toEqual([['contact_users', 2]]);
  });
});
