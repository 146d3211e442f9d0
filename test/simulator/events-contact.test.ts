import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ContactDirectory } from '../../simulator/data/contact.js';
import { startEventsSim, type EventsSim } from './events-setup.js';

// Contact change events (shared/lark/change-events.md §1): v2, no subscribe call, to every app
// installed in the tenant whose contact scope holds the user or department; updated_v3 carries
// only the changed fields in old_object, and an email or mobile change comes as its own event.

const TENANT = 'tk-ev-contact';
const STORE = { appId: 'cli_ev_contact_store', kind: 'store' as const, encryptKey: 'contact-key-1' };
const CUSTOM = { appId: 'cli_ev_contact_custom', kind: 'custom' as const, tenantKey: TENANT };
const ELSEWHERE = { appId: 'cli_ev_contact_other', kind: 'store' as const };

describe('simulator contact change events', () => {
  let s: EventsSim;
  let dir: ContactDirectory;
  const forApp = (appId: string, type?: string) => s.receiver.acked(type).filter((p) => p.appId === appId);

  beforeAll(async () => {
    // One push at a time, so each app receives its events in the order they were made.
    s = await startEventsSim([STORE, CUSTOM, ELSEWHERE], [[STORE.appId, TENANT], [ELSEWHERE.appId, 'tk-ev-contact-other']], { events: { concurrency: 1 } });
    dir = s.data.contact(TENANT);
  });
  afterAll(async () => {
    await s.stop();
  });
  beforeEach(async () => {
    await s.sim.events.idle();
    s.receiver.clear();
  });

  it('addUser: contact.user.created_v3 to the installed apps, as each may see the user', async () => {
    const user = dir.addUser({ name: 'New Hire', department_ids: ['od-tk-ev-contact-1'] });
    await s.sim.events.idle();
    const [store] = forApp(STORE.appId, 'contact.user.created_v3');
    const [custom] = forApp(CUSTOM.appId, 'contact.user.created_v3');
    expect(store!.signatureOk).toBe(true);
    expect(store!.body.header).toMatchObject({ tenant_key: TENANT, app_id: STORE.appId });
    expect(store!.event.object).toMatchObject({ open_id: user.open_id, union_id: user.union_id, name: 'New Hire', department_ids: ['od-tk-ev-contact-1'] });
    // user_id needs a custom-app-only scope.
    expect(store!.event.object.user_id).toBeUndefined();
    expect(custom!.event.object.user_id).toBe(user.user_id);
    expect(forApp(ELSEWHERE.appId)).toHaveLength(0);
  });

  it('updateUser: object after, old_object only the changed fields; email and mobile come as their own events', async () => {
    const openId = 'ou_tk-ev-contact-3';
    dir.updateUser(openId, { email: 'old@example.com' });
    await s.sim.events.idle();
    s.receiver.clear();
    const before = structuredClone(dir.user(openId));
    dir.updateUser(openId, { job_title: 'Staff Engineer', name: 'Renamed', email: 'new@example.com', mobile: '+8613800000000', en_name: before.en_name });
    await s.sim.events.idle();
    const custom = forApp(CUSTOM.appId, 'contact.user.updated_v3');
    expect(custom.map((p) => p.event.old_object)).toEqual([
      { job_title: before.job_title, name: before.name },
      { email: 'old@example.com' },
      { mobile: undefined },
    ].map((o) => JSON.parse(JSON.stringify(o))));
    expect(custom[0]!.event.object).toMatchObject({ open_id: openId, name: 'Renamed', job_title: 'Staff Engineer', email: 'old@example.com' });
    expect(custom[2]!.event.object).toMatchObject({ email: 'new@example.com', mobile: '+8613800000000' });
    // The store app sees neither email nor mobile: its email/mobile events say nothing about them.
    const store = forApp(STORE.appId, 'contact.user.updated_v3');
    expect(store).toHaveLength(3);
    expect(store[1]!.event.object.email).toBeUndefined();
    expect(store[1]!.event.old_object).toEqual({});
    // Nothing changed: no event.
    s.receiver.clear();
    dir.updateUser(openId, { name: 'Renamed' });
    await s.sim.events.idle();
    expect(s.receiver.requests).toHaveLength(0);
  });

  it('deleteUser: contact.user.deleted_v3 with the user as it was and old_object {department_ids, open_id}; gone from reads', async () => {
    const openId = 'ou_tk-ev-contact-4';
    const before = structuredClone(dir.user(openId));
    dir.deleteUser(openId);
    await s.sim.events.idle();
    const [ev] = forApp(STORE.appId, 'contact.user.deleted_v3');
    expect(ev!.event.object).toMatchObject({ open_id: openId, name: before.name });
    expect(ev!.event.old_object).toEqual({ department_ids: before.department_ids, open_id: openId });
    const token = await s.tenantToken(STORE.appId, TENANT);
    const listed = await s.call(token, 'GET', `/open-apis/contact/v3/users/find_by_department?department_id=${before.department_ids[0]}&page_size=50`);
    expect((listed.body.data!.items as Array<{ open_id: string }>).map((u) => u.open_id)).not.toContain(openId);
  });

  it('departments: created, updated (old_object the changed fields) and deleted events; order is an int', async () => {
    const dept = dir.addDepartment({ name: 'Research', parent_department_id: 'od-tk-ev-contact-1' });
    dir.updateDepartment(dept.open_department_id, { name: 'Research & Development' });
    dir.deleteDepartment(dept.open_department_id);
    await s.sim.events.idle();
    const types = forApp(STORE.appId).map((p) => p.type).sort();
    expect(types).toEqual(['contact.department.created_v3', 'contact.department.deleted_v3', 'contact.department.updated_v3']);
    const [created] = forApp(STORE.appId, 'contact.department.created_v3');
    expect(created!.event.object).toMatchObject({ open_department_id: dept.open_department_id, name: 'Research', parent_department_id: 'od-tk-ev-contact-1', status: { is_deleted: false } });
    expect(typeof created!.event.object.order).toBe('number');
    const [updated] = forApp(STORE.appId, 'contact.department.updated_v3');
    expect(updated!.event.old_object).toEqual({ name: 'Research' });
    expect(updated!.event.object.name).toBe('Research & Development');
    const [deleted] = forApp(STORE.appId, 'contact.department.deleted_v3');
    expect(deleted!.event.old_object).toEqual({ status: { is_deleted: false }, open_department_id: dept.open_department_id });
  });

  it('contact scope: contact.scope.updated_v3 to that app; later events only for users and departments inside the scope', async () => {
    const inside = 'od-tk-ev-contact-1';
    dir.setScope(STORE.appId, { departments: [inside] });
    await s.sim.events.idle();
    const [scope] = forApp(STORE.appId, 'contact.scope.updated_v3');
    expect(scope!.event.added.departments.map((d: { open_department_id: string }) => d.open_department_id)).toEqual([inside]);
    expect(scope!.event.added.departments[0].order).toBe('1');
    expect(scope!.event.removed.departments.map((d: { open_department_id: string }) => d.open_department_id)).toEqual(['0']);
    expect(scope!.event).toMatchObject({ added: { users: [], user_groups: [] }, removed: { users: [], user_groups: [] } });
    expect(forApp(CUSTOM.appId, 'contact.scope.updated_v3')).toHaveLength(0);

    s.receiver.clear();
    const child = dir.children(inside, false)[0]!.open_department_id;
    const insider = dir.members(child)[0]!.open_id;
    // od-…-4 is the second top-level department (1 has 2 and 3 below it).
    const outsider = dir.members('od-tk-ev-contact-4')[0]!.open_id;
    dir.updateUser(insider, { job_title: 'Inside' });
    dir.updateUser(outsider, { job_title: 'Outside' });
    await s.sim.events.idle();
    expect(forApp(STORE.appId).map((p) => p.event.object.open_id)).toEqual([insider]);
    expect(forApp(CUSTOM.appId).map((p) => p.event.object.open_id).sort()).toEqual([insider, outsider].sort());

    s.receiver.clear();
    dir.setScope(STORE.appId, undefined);
    await s.sim.events.idle();
    const [back] = forApp(STORE.appId, 'contact.scope.updated_v3');
    expect(back!.event.added.departments[0].open_department_id).toBe('0');
  });
});
