import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { FieldType, type BitableTenant, type SimTable } from '../../simulator/data/bitable/index.js';
import { STORE_APP, openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';
import { runToEnd } from '../helpers/runs.js';
import { startWorker } from '../../src/worker/worker.js';
import { waitFor } from '../helpers/wait.js';
import { countCalls, eventStatuses, eventsSettled, row } from './helpers.js';

// Base change events in (issue 14): drive.file.bitable_record_changed_v1 re-reads the named
// records with records/batch_get (at most one call per 100 changed records) or marks them deleted
// once batch_get names them absent; drive.file.bitable_field_changed_v1 refreshes base_fields;
// an event with an older table revision than one applied to a record changes nothing.

const TENANT = 'tenant-ev-base';
const RECORD_EVENT = 'drive.file.bitable_record_changed_v1';

describe('Base change events in', () => {
  let stack: Stack;
  let bitable: BitableTenant;
  let appToken: string;
  let table: SimTable;
  let calls: Record<string, number>;
  const key = (recordId: string) => `${appToken}:${table.table_id}:${recordId}`;

  beforeAll(async () => {
    stack = await startStack({ data: { bitableWrites: { latencyMs: 0 } } });
    await whenReady(stack);
    await openTenant(stack, TENANT);
    bitable = stack.data.bitable(TENANT, { projects: 120, ledger: 5, tasks: 5, events: 5, orders: 5 });
    appToken = bitable.refs.main.appToken;
    table = bitable.table(appToken, bitable.refs.main.projects);
    // Subscribing is another part's work (subscription management): here the simulator is told directly.
    stack.sim.events.subscriptions.subscribeFile(STORE_APP.appId, TENANT, appToken, 'bitable');
    await stack.larksync.services.connectors.put(TENANT, 'base', { enabled: true, config: { tables: [{ appToken, tableId: table.table_id }] } }, 'store');
    expect((await runToEnd(stack, TENANT, 'base', 'full')).status).toBe('succeeded');
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    await eventsSettled(stack);
    calls = countCalls(stack, TENANT);
  });

  it('edits, additions and a deletion: rows follow, at most one batch_get per event, no listing', async () => {
    const [a, b, c] = [table.nth(0)!, table.nth(1)!, table.nth(2)!];
    table.edit(a.record_id, { Name: 'Edited by event' });
    table.delete(c.record_id);
    const [added] = table.add([{ Name: 'Added by event' }]);
    await waitFor(async () => (await row(stack, 'base_records', TENANT, key(added!.record_id)))?.fields?.Name === 'Added by event', 10_000, 'added row');
    await waitFor(async () => (await row(stack, 'base_records', TENANT, key(c.record_id)))?.deleted_at, 10_000, 'deleted row');
    await eventsSettled(stack);
    expect((await row(stack, 'base_records', TENANT, key(a.record_id)))!.fields.Name).toBe('Edited by event');
    expect((await row(stack, 'base_records', TENANT, key(b.record_id)))!.deleted_at).toBeNull();
    // Events that wait together for a drain fold into one read (see the last test).
    expect(Object.keys(calls)).toEqual(['bitable.records.batch_get']);
    expect(calls['bitable.records.batch_get']).toBeLessThanOrEqual(3);
    expect(await eventStatuses(stack, RECORD_EVENT)).toEqual(['processed', 'processed', 'processed']);
  });

  it('250 records added at once: at most one batch_get per 100 records', async () => {
    stack.sim.events.setOptions({ recordActionsPerEvent: 250 });
    const added = table.add(Array.from({ length: 250 }, (_, i) => ({ Name: `Bulk ${i}` })));
    await eventsSettled(stack);
    stack.sim.events.setOptions({ recordActionsPerEvent: 100 });
    const n = await sql<{ n: number }>`
      select count(*)::int as n from base_records where tenant_key = ${TENANT} and record_key = any(${added.map((r) => key(r.record_id))}::text[]) and deleted_at is null`.execute(stack.db.db);
    expect(n.rows[0]!.n).toBe(250);
    expect(calls).toEqual({ 'bitable.records.batch_get': 3 });
  });

  it('a stale event (older revision than one applied to the record) changes nothing and makes no call', async () => {
    const r = table.nth(5)!;
    stack.sim.events.setOptions({ concurrency: 1 });
    stack.sim.events.pause();
    table.edit(r.record_id, { Name: 'First edit' });
    table.edit(r.record_id, { Name: 'Second edit' });
    stack.sim.events.resume({ order: 'reverse' });
    await eventsSettled(stack);
    stack.sim.events.setOptions({ concurrency: 16 });
    expect((await row(stack, 'base_records', TENANT, key(r.record_id)))!.fields.Name).toBe('Second edit');
    expect(calls).toEqual({ 'bitable.records.batch_get': 1 });
    // The stale one is ignored, or, when both waited for the same drain, folded into the newer
    // one's read (and handled by it).
    expect([['processed', 'ignored'], ['processed', 'processed']]).toContainEqual((await eventStatuses(stack, RECORD_EVENT)).slice(-2));
  });

  it('a table of the same Base that is not configured: its events are stored and ignored, no call', async () => {
    const ledger = bitable.table(appToken, bitable.refs.main.ledger);
    const r = ledger.nth(0)!;
    ledger.edit(r.record_id, { Name: 'Not synced' });
    await eventsSettled(stack);
    expect(await row(stack, 'base_records', TENANT, `${appToken}:${ledger.table_id}:${r.record_id}`)).toBeUndefined();
    expect(calls).toEqual({});
    expect((await eventStatuses(stack, RECORD_EVENT)).at(-1)).toBe('ignored');
  });

  it('field events refresh base_fields: an added field appears, a deleted one is marked deleted', async () => {
    const field = table.addField({ field_name: 'Evented', type: FieldType.Text, ui_type: 'Text' });
    const fieldKey = `${appToken}:${table.table_id}:${field.field_id}`;
    await waitFor(async () => (await row(stack, 'base_fields', TENANT, fieldKey))?.field_name === 'Evented', 10_000, 'new field');
    table.deleteField(field.field_id);
    await waitFor(async () => (await row(stack, 'base_fields', TENANT, fieldKey))?.deleted_at, 10_000, 'field deleted');
    await eventsSettled(stack);
    expect(calls).toEqual({ 'bitable.fields.list': 2 });
  });

  it('60 single-record events waiting together: folded, read with 2 batch_get calls, one commit per 25 events', async () => {
    // A webhook wanting records.changed: its outbox counts the announcements (its receiver is down).
    await stack.larksync.services.webhooks.create({ url: 'http://127.0.0.1:9/hook', eventTypes: ['records.changed'] });
    // Nothing applies events while they arrive: a burst piles up as it does behind a busy worker.
    await stack.larksync.worker?.stop();
    const rows = Array.from({ length: 60 }, (_, i) => table.nth(10 + i)!);
    rows.forEach((r, i) => table.edit(r.record_id, { Name: `Burst ${i}` }));
    await stack.sim.events.idle({ timeoutMs: 15_000 });
    const outboxBefore = await recordsChanged();
    const worker = await startWorker(stack.larksync.services, { pollInterval: 100 });
    try {
      await eventsSettled(stack);
      for (const [i, r] of rows.entries()) expect((await row(stack, 'base_records', TENANT, key(r.record_id)))!.fields.Name).toBe(`Burst ${i}`);
      // At most 50 events fold into one read (100 ids a call would allow more); one event each
      // would have made 60 calls.
      expect(calls).toEqual({ 'bitable.records.batch_get': 2 });
      expect((await eventStatuses(stack, RECORD_EVENT)).slice(-60)).toEqual(Array(60).fill('processed'));
      // The group's commits each announce the change once (a commit per event announced it 60 times).
      expect((await recordsChanged()) - outboxBefore).toBeLessThanOrEqual(3);
    } finally {
      await worker.stop();
    }
  });

  /** records.changed outbox rows of the tenant so far. */
  async function recordsChanged(): Promise<number> {
    const r = await sql<{ n: number }>`select count(*)::int as n from webhook_events where type = 'records.changed' and tenant_key = ${TENANT}`.execute(stack.db.db);
    return r.rows[0]!.n;
  }
});
