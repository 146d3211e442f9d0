import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { RunLease } from '../../src/sync/engine/run-lease.js';
import { SyncError } from '../../src/sync/sync-errors.js';
import type { SyncRunRow } from '../../src/sync/sync.tables.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { runToEnd } from '../helpers/runs.js';
import { streamTables } from '../helpers/db.js';

const BASE = 'tenant-del-base';
const SILENT = 'tenant-del-silent';
const CONTACT = 'tenant-del-contact';
const APPROVAL = 'tenant-del-approval';

describe('deletions are marked only when certain', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    // Polling is what this file tests; change events (test/events-in/) would apply changes between runs.
    stack.sim.events.pause();
    stack.data.bitable(BASE, { projects: 1600, ledger: 0 });
    stack.data.bitable(SILENT, { projects: 120, ledger: 0 });
    stack.data.approval(APPROVAL, { definitions: 1, instancesPerDay: 4, days: 3 });
    for (const t of [BASE, SILENT, CONTACT, APPROVAL]) await openTenant(stack, t);
    for (const t of [BASE, SILENT]) {
      const { appToken, projects } = stack.data.bitable(t).refs.main;
      await stack.larksync.services.connectors.put(t, 'base', { enabled: true, config: { tables: [{ appToken, tableId: projects }] } }, 'store');
    }
    await stack.larksync.services.connectors.put(CONTACT, 'contact', { enabled: true, config: {} }, 'store');
    await stack.larksync.services.connectors.put(
      APPROVAL,
      'approval',
      { enabled: true, config: { approvalCodes: stack.data.approval(APPROVAL).codes(), backfillDays: 3, lookbackDays: 1 } },
      'store',
    );
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const recordOf = async (tenant: string, key: string) =>
    (await sql<{ deleted_at: Date | null }>`select deleted_at from base_records where tenant_key = ${tenant} and record_key = ${key}`.execute(stack.db.db)).rows[0];

  it('Base: a delete plus an add between pages hides a live record from a listing that counts complete; it is read back alive, and only the absent one is marked', async () => {
    const data = stack.data.bitable(BASE);
    const { appToken, projects: tableId } = data.refs.main;
    const table = data.table(appToken, tableId);
    const key = (id: string) => `${appToken}:${tableId}:${id}`;
    expect((await runToEnd(stack, BASE, 'base', 'full')).status).toBe('succeeded');

    const readEarly = table.nth(20)!.record_id; // on page 1, already read when it goes
    const skipped = table.nth(500)!.record_id; // moves back onto page 1's end: never listed
    const goneLater = table.nth(1200)!.record_id; // not yet read when it goes
    let pages = 0;
    stack.data.onPage = (api, who) => {
      if (api !== 'bitable.records.search' || who.tenantKey !== BASE) return;
      pages += 1;
      if (pages !== 2) return;
      table.delete(readEarly);
      table.delete(goneLater);
      // Two added at the end: Lark's total is what it was, and so is the count of records seen.
      table.add(2);
    };
    const batchGets = data.batchGets(appToken, tableId).length;
    let run: SyncRunRow;
    try {
      run = await runToEnd(stack, BASE, 'base', 'full');
    } finally {
      stack.data.onPage = undefined;
    }
    expect(run.status).toBe('succeeded');
    // The listing looked complete by its counts, so its misses were read back: the skipped
    // record exists (kept, stored afresh), the one deleted ahead of the read position is absent.
    expect((await recordOf(BASE, key(skipped)))?.deleted_at).toBeNull();
    expect((await recordOf(BASE, key(goneLater)))?.deleted_at).not.toBeNull();
    expect(run.deletions_confirmed).toBe(1);
    expect(run.deletion_candidates_alive).toBe(1);
    expect(data.batchGets(appToken, tableId).length - batchGets).toBe(1);
    // The record deleted behind the read position was listed in this pass: the next one finds it gone.
    expect((await recordOf(BASE, key(readEarly)))?.deleted_at).toBeNull();
    const next = await runToEnd(stack, BASE, 'base', 'full');
    expect(next.status).toBe('succeeded');
    expect((await recordOf(BASE, key(readEarly)))?.deleted_at).not.toBeNull();
    expect(next.deletions_confirmed).toBe(1);
    const live = await sql<{ n: number }>`
      select count(*)::int as n from base_records where tenant_key = ${BASE} and partition = ${`${appToken}:${tableId}`} and deleted_at is null`.execute(stack.db.db);
    expect(live.rows[0]?.n).toBe(table.count);
  });

  it('Base: a read-back that names no id as absent (advanced permissions) marks nothing deleted', async () => {
    const data = stack.data.bitable(SILENT);
    const { appToken, projects: tableId } = data.refs.main;
    const table = data.table(appToken, tableId);
    expect((await runToEnd(stack, SILENT, 'base', 'full')).status).toBe('succeeded');
    const gone = table.nth(7)!.record_id;
    table.delete(gone);
    table.silentBatchGet = true;
    const run = await runToEnd(stack, SILENT, 'base', 'full');
    expect(run.status).toBe('succeeded');
    expect((await recordOf(SILENT, `${appToken}:${tableId}:${gone}`))?.deleted_at).toBeNull();
    expect(run.deletions_confirmed).toBe(0);
    expect(run.deletion_candidates_alive).toBe(1);
    table.silentBatchGet = false;
    const settled = await runToEnd(stack, SILENT, 'base', 'full');
    expect((await recordOf(SILENT, `${appToken}:${tableId}:${gone}`))?.deleted_at).not.toBeNull();
    expect(settled.deletions_confirmed).toBe(1);
  });

  it('Contact: a listing that ends with has_more but no page_token is incomplete and judges nothing', async () => {
    const dir = stack.data.contact(CONTACT);
    expect((await runToEnd(stack, CONTACT, 'contact', 'full')).status).toBe('succeeded');
    const gone = [...dir.users.values()].find((u) => !u.department_ids.includes('0'))!;
    dir.users.delete(gone.open_id);
    const user = async () => (await streamTables(stack.db.db).selectFrom('contact_users').select('deleted_at').where('record_key', '=', gone.open_id).executeTakeFirstOrThrow()).deleted_at;

    // First complete listing without the user: a candidate.
    expect((await runToEnd(stack, CONTACT, 'contact', 'full')).status).toBe('succeeded');
    expect(await user()).toBeNull();
    // A listing cut short is not a second complete listing.
    stack.data.truncateListings('contact.users.find_by_department', 1);
    const cut = await runToEnd(stack, CONTACT, 'contact', 'full');
    expect(cut.status).toBe('succeeded');
    expect(await user()).toBeNull();
    expect(stack.logs.some((l) => l.includes('contact users listing stopped early') && l.includes(`"runId":"${cut.id}"`))).toBe(true);
    // A complete listing that misses the user again settles it.
    const settled = await runToEnd(stack, CONTACT, 'contact', 'full');
    expect(await user()).not.toBeNull();
    expect(settled.deletions_confirmed).toBe(1);
  });

  it('Approval: a window listing that stops early does not move the code cursor past it', async () => {
    const code = stack.data.approval(APPROVAL).codes()[0]!;
    const cursorOf = async () => {
      const row = await stack.db.db
        .selectFrom('stream_states')
        .select('state')
        .where('tenant_key', '=', APPROVAL)
        .where('stream', '=', 'approval_instances')
        .executeTakeFirst();
      return (row?.state as { s?: { cursors?: Record<string, number> } } | undefined)?.s?.cursors?.[code];
    };
    stack.data.truncateListings('approval.instances.list', 1);
    const cut = await runToEnd(stack, APPROVAL, 'approval', 'incremental');
    expect(cut.status).toBe('succeeded');
    expect(await cursorOf()).toBeUndefined();
    const whole = await runToEnd(stack, APPROVAL, 'approval', 'incremental');
    expect(whole.status).toBe('succeeded');
    expect(await cursorOf()).toBeGreaterThan(0);
  });

  it("a slice that lost its lease can neither finish the run nor take the new holder's seen keys", async () => {
    const db = stack.db.db;
    const run = await db
      .insertInto('sync_runs')
      .values({ tenant_key: BASE, module: 'base', mode: 'full', trigger: 'api', status: 'queued', lease_id: sql<string>`gen_random_uuid()`, counts: '{}' })
      .returningAll()
      .executeTakeFirstOrThrow();
    const stale = (await RunLease.claim(db, run.id, run.lease_id!))!;
    await sql`insert into sync_seen_pages (run_id, stream, partition, keys) values (${run.id}, 'base_records', 'p', array['k1', 'k2'])`.execute(db);
    // Resumed elsewhere: the way resumeStaleRuns takes a silent run over.
    const taken = await sql<{ lease_id: string }>`update sync_runs set lease_id = gen_random_uuid() where id = ${run.id} returning lease_id`.execute(db);
    expect(await stale.finish('failed', new SyncError('upstream_unavailable', 'the stale slice gave up'))).toBeUndefined();
    const seen = async () => (await sql<{ n: number }>`select count(*)::int as n from sync_seen_pages where run_id = ${run.id}`.execute(db)).rows[0]?.n;
    expect(await seen()).toBe(1);
    expect((await stack.larksync.services.sync.get(run.id))?.status).toBe('running');
    const holder = (await RunLease.claim(db, run.id, taken.rows[0]!.lease_id))!;
    expect(await holder.finish('succeeded', null)).toBe('succeeded');
    expect(await seen()).toBe(0);
  });
});
