import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';
import { runToEnd } from '../helpers/runs.js';
import { startWorker, type WorkerHandle } from '../../src/worker/worker.js';
import { waitFor } from '../helpers/wait.js';
import { countCalls, eventStatuses, eventsSettled, row } from './helpers.js';

// Contact change events in (issue 14): each user or department event re-reads that object (one
// call), through the page writer; deletions are confirmed by the re-read; an event older than one
// already applied to the object changes nothing and costs no call; scope changes start a pass.

const TENANT = 'tenant-ev-contact';

describe('contact change events in', () => {
  let stack: Stack;
  let calls: Record<string, number>;
  let worker: WorkerHandle | undefined;
  beforeAll(async () => {
    stack = await startStack();
    await whenReady(stack);
    await openTenant(stack, TENANT);
    await stack.larksync.services.connectors.put(TENANT, 'contact', { enabled: true, config: {} }, 'store');
    expect((await runToEnd(stack, TENANT, 'contact', 'full')).status).toBe('succeeded');
  });
  afterAll(async () => {
    await worker?.stop();
    await stack?.stop();
  });
  beforeEach(async () => {
    await eventsSettled(stack);
    calls = countCalls(stack, TENANT);
  });

  it('updated: the user is read again (one call, no listing) and the change is on the feed', async () => {
    const dir = stack.data.contact(TENANT);
    const user = [...dir.users.values()][3]!;
    const before = await row(stack, 'contact_users', TENANT, user.open_id);
    dir.updateUser(user.open_id, { name: 'Renamed By Event', job_title: 'Evented' });
    await waitFor(async () => (await row(stack, 'contact_users', TENANT, user.open_id))?.name === 'Renamed By Event', 10_000, 'renamed row');
    await eventsSettled(stack);
    const after = await row(stack, 'contact_users', TENANT, user.open_id);
    expect(after!.raw.job_title).toBe('Evented');
    expect(BigInt(after!.change_seq)).toBeGreaterThan(BigInt(before!.change_seq));
    expect(after!.read_seq).not.toBeNull();
    expect(calls).toEqual({ 'contact.users.get': 1 });
    expect(await eventStatuses(stack, 'contact.user.updated_v3')).toEqual(['processed']);
  });

  it('created and deleted: a new user is inserted; a deleted one is marked deleted once the re-read confirms it', async () => {
    const dir = stack.data.contact(TENANT);
    const dept = [...dir.departments.values()][0]!;
    const hire = dir.addUser({ name: 'Event Hire', department_ids: [dept.open_department_id] });
    await waitFor(() => row(stack, 'contact_users', TENANT, hire.open_id), 10_000, 'new user row');
    dir.deleteUser(hire.open_id);
    await waitFor(async () => (await row(stack, 'contact_users', TENANT, hire.open_id))?.deleted_at, 10_000, 'user marked deleted');
    await eventsSettled(stack);
    expect(calls).toEqual({ 'contact.users.get': 2 });
  });

  it('departments: created, renamed and deleted, one call each', async () => {
    const dir = stack.data.contact(TENANT);
    const parent = [...dir.departments.values()][0]!;
    const dept = dir.addDepartment({ name: 'Events Lab', parent_department_id: parent.open_department_id });
    await waitFor(() => row(stack, 'contact_departments', TENANT, dept.open_department_id), 10_000, 'new department');
    dir.updateDepartment(dept.open_department_id, { name: 'Events Lab 2' });
    await waitFor(async () => (await row(stack, 'contact_departments', TENANT, dept.open_department_id))?.name === 'Events Lab 2', 10_000, 'renamed');
    dir.deleteDepartment(dept.open_department_id);
    await waitFor(async () => (await row(stack, 'contact_departments', TENANT, dept.open_department_id))?.deleted_at, 10_000, 'department deleted');
    await eventsSettled(stack);
    expect(calls).toEqual({ 'contact.departments.get': 3 });
  });

  it('freshness: an edit of each user, one after another, each visible in its row shortly after the edit (figures printed)', async () => {
    const dir = stack.data.contact(TENANT);
    const users = [...dir.users.values()].slice(0, 30);
    const ms: number[] = [];
    for (const [i, u] of users.entries()) {
      const started = performance.now();
      dir.updateUser(u.open_id, { job_title: `Fresh ${i}` });
      await waitFor(async () => (await row(stack, 'contact_users', TENANT, u.open_id))?.raw?.job_title === `Fresh ${i}`, 10_000, `edit ${i}`);
      ms.push(performance.now() - started);
    }
    ms.sort((a, b) => a - b);
    const at = (q: number) => Math.round(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!);
    console.log(`contact event freshness (edit in the simulator -> row visible, 50 ms polls): p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms over ${ms.length}`);
    await eventsSettled(stack);
    expect(calls).toEqual({ 'contact.users.get': users.length });
  });

  it('a stale event (older push than one applied) changes nothing and makes no call', async () => {
    const dir = stack.data.contact(TENANT);
    const user = [...dir.users.values()][5]!;
    stack.sim.events.setOptions({ concurrency: 1 });
    stack.sim.events.pause();
    dir.updateUser(user.open_id, { name: 'First' });
    await new Promise((r) => setTimeout(r, 20));
    dir.updateUser(user.open_id, { name: 'Second' });
    // The newer event arrives first; the older one after it.
    stack.sim.events.resume({ order: 'reverse' });
    await eventsSettled(stack);
    stack.sim.events.setOptions({ concurrency: 16 });
    expect((await row(stack, 'contact_users', TENANT, user.open_id))!.name).toBe('Second');
    expect(calls).toEqual({ 'contact.users.get': 1 });
    const statuses = await eventStatuses(stack, 'contact.user.updated_v3');
    expect(statuses.slice(-2)).toEqual(['processed', 'ignored']);
  });

  it('an event that arrived before a re-read of its user started needs no read of its own', async () => {
    const dir = stack.data.contact(TENANT);
    const user = [...dir.users.values()][7]!;
    // Both edits' events are stored before anything applies them (a busy worker): the first one's
    // re-read starts after the second arrived, so it already shows the second edit.
    await stack.larksync.worker?.stop();
    dir.updateUser(user.open_id, { name: 'Edit one' });
    await new Promise((r) => setTimeout(r, 20));
    dir.updateUser(user.open_id, { name: 'Edit two', job_title: 'Second' });
    await stack.sim.events.idle({ timeoutMs: 10_000 });
    // This worker stays for the tests that follow (stopped with the stack).
    worker = await startWorker(stack.larksync.services, { pollInterval: 100 });
    await eventsSettled(stack);
    const after = await row(stack, 'contact_users', TENANT, user.open_id);
    expect(after).toMatchObject({ name: 'Edit two' });
    expect(after!.raw.job_title).toBe('Second');
    expect(calls).toEqual({ 'contact.users.get': 1 });
    expect((await eventStatuses(stack, 'contact.user.updated_v3')).slice(-2)).toEqual(['processed', 'ignored']);
  });

  it('a tenant without the module enabled: events are stored and ignored, no call', async () => {
    await stack.larksync.services.connectors.put(TENANT, 'contact', { enabled: false, config: {} }, 'store');
    const dir = stack.data.contact(TENANT);
    const user = [...dir.users.values()][6]!;
    dir.updateUser(user.open_id, { name: 'Nobody Listens' });
    await eventsSettled(stack);
    expect((await row(stack, 'contact_users', TENANT, user.open_id))!.name).not.toBe('Nobody Listens');
    expect(calls).toEqual({});
    expect((await eventStatuses(stack, 'contact.user.updated_v3')).at(-1)).toBe('ignored');
    await stack.larksync.services.connectors.put(TENANT, 'contact', { enabled: true, config: {} }, 'store');
  });

  it('contact.scope.updated_v3 starts a contact pass', async () => {
    const dir = stack.data.contact(TENANT);
    const before = await stack.larksync.services.db.selectFrom('sync_runs').select('id').where('tenant_key', '=', TENANT).execute();
    dir.setScope('cli_store_test_0001', { departments: [[...dir.departments.values()][0]!.open_department_id] });
    await eventsSettled(stack);
    dir.setScope('cli_store_test_0001', undefined);
    const runs = await stack.larksync.services.db.selectFrom('sync_runs').select(['id', 'module']).where('tenant_key', '=', TENANT).execute();
    expect(runs.length).toBeGreaterThan(before.length);
    expect(runs.at(-1)!.module).toBe('contact');
  });
});
