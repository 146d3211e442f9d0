import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FieldType, type BitableTenant, type SimTable } from '../../simulator/data/bitable/index.js';
import { startEventsSim, type EventsSim } from './events-setup.js';
import type { ReceivedPush } from './event-receiver.js';

// Base change events (shared/lark/change-events.md §3): only after
// POST /drive/v1/files/:app_token/subscribe?file_type=bitable (1069603 without manage rights on
// the Base), record changes of the write API and of test edits as
// drive.file.bitable_record_changed_v1 (field ids, JSON-string values, formula left out, table
// revision, update_time), field changes as drive.file.bitable_field_changed_v1, and each with
// drive.file.edit_v1.

const TENANT = 'tk-ev-base';
const APP = { appId: 'cli_ev_base', kind: 'store' as const, encryptKey: 'base-key-1' };
const RECORD_EVENT = 'drive.file.bitable_record_changed_v1';

describe('simulator Base change events', () => {
  let s: EventsSim;
  let token: string;
  let bitable: BitableTenant;
  let appToken: string;
  let orders: SimTable;
  const files = (tail: string, file = appToken) => `/open-apis/drive/v1/files/${file}/${tail}`;
  const records = (tail: string) => `/open-apis/bitable/v1/apps/${appToken}/tables/${orders.table_id}/records${tail}`;
  const fieldId = (name: string) => orders.fields.find((f) => f.field_name === name)!.field_id;
  const cell = (action: Record<string, any>, side: 'before_value' | 'after_value', name: string) =>
    (action[side] as Array<{ field_id: string; field_value: string }>).find((c) => c.field_id === fieldId(name));

  beforeAll(async () => {
    s = await startEventsSim([APP], [[APP.appId, TENANT]], { data: { bitableWrites: { latencyMs: 0 } } });
    bitable = s.data.bitable(TENANT, { projects: 20, ledger: 5, tasks: 5, events: 100, orders: 10 });
    appToken = bitable.refs.main.appToken;
    orders = bitable.table(appToken, bitable.refs.main.orders);
    token = await s.tenantToken(APP.appId, TENANT);
  });
  afterAll(async () => {
    await s.stop();
  });
  beforeEach(async () => {
    await s.sim.events.idle();
    s.receiver.clear();
    s.sim.events.setOptions({ recordActionsPerEvent: 100, getSubscribeWhenNone: 'false' });
  });

  it('the subscribe calls: parameter errors, not found, no manage right (1069603), get_subscribe and delete_subscribe', async () => {
    expect(await s.call(token, 'POST', files('subscribe'))).toMatchObject({ status: 400, body: { code: 1069602 } });
    expect(await s.call(token, 'POST', files('subscribe?file_type=mindnote'))).toMatchObject({ status: 400, body: { code: 1069602 } });
    expect(await s.call(token, 'POST', files('subscribe?file_type=bitable', 'bascnNoSuchBase0000000000'))).toMatchObject({ status: 400, body: { code: 1069604 } });
    expect((await s.call(token, 'GET', files('get_subscribe?file_type=bitable'))).body.data).toEqual({ is_subscribe: false });
    expect(await s.call(token, 'DELETE', files('delete_subscribe?file_type=bitable'))).toMatchObject({ status: 400, body: { code: 1069605 } });
    s.sim.events.setOptions({ getSubscribeWhenNone: '1069605' });
    expect(await s.call(token, 'GET', files('get_subscribe?file_type=bitable'))).toMatchObject({ status: 400, body: { code: 1069605 } });

    bitable.setManagers(appToken, ['cli_someone_else']);
    expect(await s.call(token, 'POST', files('subscribe?file_type=bitable'))).toMatchObject({ status: 403, body: { code: 1069603 } });
    bitable.setManagers(appToken, undefined);
    expect(await s.call(token, 'POST', files('subscribe?file_type=bitable'))).toEqual({ status: 200, body: { code: 0, msg: 'success', data: {} } });
    // Subscribing again is fine (no error documented for it).
    expect((await s.call(token, 'POST', files('subscribe?file_type=bitable'))).body.code).toBe(0);
    expect((await s.call(token, 'GET', files('get_subscribe?file_type=bitable'))).body.data).toEqual({ is_subscribe: true });
  });

  it('batch_create: one record event with every added record (field ids, JSON-string values, no formula), and drive.file.edit_v1', async () => {
    const revisionBefore = orders.revision;
    const res = await s.call(token, 'POST', records('/batch_create'), {
      records: [1, 2, 3].map((i) => ({ fields: { Order: `Evented ${i}`, Qty: i, Price: 10 } })),
    });
    expect(res.body.code).toBe(0);
    const ids = (res.body.data!.records as Array<{ record_id: string }>).map((r) => r.record_id);
    await s.sim.events.idle();
    const [ev] = s.receiver.acked(RECORD_EVENT);
    expect(s.receiver.acked(RECORD_EVENT)).toHaveLength(1);
    expect(ev!.signatureOk).toBe(true);
    expect(ev!.event).toMatchObject({ file_type: 'bitable', file_token: appToken, table_id: orders.table_id, subscriber_id_list: [] });
    expect(ev!.event.revision).toBeGreaterThan(revisionBefore);
    expect(ev!.event.update_time).toBe(Math.floor(Number(ev!.body.header.create_time) / 1000));
    // Written with the tenant token: the app, no user (unconfirmed shape).
    expect(ev!.event.operator_id).toEqual({ union_id: '', open_id: '' });
    const actions = ev!.event.action_list as Array<Record<string, any>>;
    expect(actions.map((a) => [a.record_id, a.action])).toEqual(ids.map((id) => [id, 'record_added']));
    expect(actions[1]!.before_value).toEqual([]);
    expect(cell(actions[1]!, 'after_value', 'Qty')!.field_value).toBe('2');
    expect(JSON.parse(cell(actions[1]!, 'after_value', 'Order')!.field_value)).toEqual([{ type: 'text', text: 'Evented 2' }]);
    expect(cell(actions[1]!, 'after_value', 'Total')).toBeUndefined();
    expect(s.receiver.acked('drive.file.edit_v1').map((p) => p.event)).toEqual([
      { file_type: 'bitable', file_token: appToken, operator_id_list: [{ union_id: '', open_id: '' }], subscriber_id_list: [] },
    ]);
  });

  it('batch_update: record_edited with only the changed fields before and after; batch_delete: record_deleted with the values before', async () => {
    const [a, b] = [orders.nth(0)!, orders.nth(1)!];
    await s.call(token, 'POST', records('/batch_update'), { records: [a, b].map((r) => ({ record_id: r.record_id, fields: { Qty: 77 } })) });
    await s.sim.events.idle();
    const [edited] = s.receiver.acked(RECORD_EVENT);
    const actions = edited!.event.action_list as Array<Record<string, any>>;
    expect(actions.map((x) => x.action)).toEqual(['record_edited', 'record_edited']);
    expect(cell(actions[0]!, 'before_value', 'Qty')!.field_value).toBe(JSON.stringify(a.fields.Qty));
    expect(cell(actions[0]!, 'after_value', 'Qty')!.field_value).toBe('77');
    // Unchanged fields are left out; Total (a formula) changed but is never reported.
    expect(cell(actions[0]!, 'after_value', 'Order')).toBeUndefined();
    expect(cell(actions[0]!, 'after_value', 'Total')).toBeUndefined();

    s.receiver.clear();
    const before = orders.nth(2)!;
    await s.call(token, 'POST', records('/batch_delete'), { records: [before.record_id] });
    await s.sim.events.idle();
    const [deleted] = s.receiver.acked(RECORD_EVENT);
    const [action] = deleted!.event.action_list as Array<Record<string, any>>;
    expect(action).toMatchObject({ record_id: before.record_id, action: 'record_deleted', after_value: [] });
    expect(cell(action!, 'before_value', 'Order')!.field_value).toBe(JSON.stringify(before.fields.Order));
    expect(deleted!.event.revision).toBeGreaterThan(edited!.event.revision);
  });

  it('a test edit of SimTable emits too: the editor as operator, person fields with field_identity_value', async () => {
    const person = { id: 'ou_tk-ev-base-3', name: 'User 3', en_name: 'User 3', email: 'user3@example.com' };
    const rec = orders.nth(3)!;
    orders.edit(rec.record_id, { Buyer: [person] }, person);
    await s.sim.events.idle();
    const [ev] = s.receiver.acked(RECORD_EVENT);
    expect(ev!.event.operator_id).toEqual({ union_id: 'on_tk-ev-base-3', open_id: 'ou_tk-ev-base-3' });
    const [action] = ev!.event.action_list as Array<Record<string, any>>;
    const buyer = cell(action!, 'after_value', 'Buyer') as unknown as { field_identity_value: { users: Array<Record<string, unknown>> } };
    expect(buyer.field_identity_value.users).toEqual([
      { user_id: { union_id: 'on_tk-ev-base-3', open_id: 'ou_tk-ev-base-3' }, name: 'User 3', en_name: 'User 3', avatar_url: '' },
    ]);
  });

  it('a large write is split into events of recordActionsPerEvent actions', async () => {
    s.sim.events.setOptions({ recordActionsPerEvent: 2 });
    await s.call(token, 'POST', records('/batch_create'), { records: [1, 2, 3, 4, 5].map((i) => ({ fields: { Qty: i } })) });
    await s.sim.events.idle();
    const sizes = s.receiver.acked(RECORD_EVENT).map((p: ReceivedPush) => p.event.action_list.length).sort();
    expect(sizes).toEqual([1, 2, 2]);
    expect(s.receiver.acked('drive.file.edit_v1')).toHaveLength(1);
  });

  it('field changes: drive.file.bitable_field_changed_v1 with before/after field values', async () => {
    const added = orders.addField({ field_name: 'Notes', type: FieldType.Text, ui_type: 'Text' });
    orders.updateField(added.field_id, { field_name: 'Remarks' });
    orders.deleteField(added.field_id);
    await s.sim.events.idle();
    const actions = s.receiver.acked('drive.file.bitable_field_changed_v1').flatMap((p) => p.event.action_list as Array<Record<string, any>>);
    expect(actions.map((a) => a.action).sort()).toEqual(['field_added', 'field_deleted', 'field_edited']);
    const edited = actions.find((a) => a.action === 'field_edited')!;
    expect(edited).toMatchObject({ field_id: added.field_id, before_value: { id: added.field_id, name: 'Notes', type: FieldType.Text }, after_value: { name: 'Remarks' } });
    expect(actions.find((a) => a.action === 'field_added')!.before_value).toBeUndefined();
    expect(actions.find((a) => a.action === 'field_deleted')!.after_value).toBeUndefined();
    expect(s.receiver.acked('drive.file.edit_v1')).toHaveLength(3);
  });

  it('other Bases without a subscription stay silent; delete_subscribe ends the events', async () => {
    const tasks = bitable.table(bitable.refs.wiki.appToken, bitable.refs.wiki.tasks);
    tasks.edit(tasks.nth(0)!.record_id, { Done: true });
    await s.sim.events.idle();
    expect(s.receiver.requests).toHaveLength(0);

    expect((await s.call(token, 'DELETE', files('delete_subscribe?file_type=bitable'))).body.code).toBe(0);
    orders.edit(orders.nth(0)!.record_id, { Qty: 5 });
    await s.sim.events.idle();
    expect(s.receiver.requests).toHaveLength(0);
  });
});
