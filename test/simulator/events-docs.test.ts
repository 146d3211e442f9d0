import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { REDIRECT, exchange, redirectParams } from './oauth-client.js';
import { startEventsSim, type EventsSim } from './events-setup.js';

// Drive file events (shared/lark/change-events.md §3–4): after the file subscribe call (owner or
// manager only: 1069603 otherwise), an edit gives drive.file.edit_v1 to owners and managers; a
// title change, a move to the trash and a permanent deletion give title_updated / trashed /
// deleted events to owners only (a manager receives just edit, field and record events).

const TENANT = 'tk-ev-docs';
const APP = { appId: 'cli_ev_docs', kind: 'store' as const, encryptKey: 'docs-key-1', redirectUris: [REDIRECT] };
const EDIT = 'drive.file.edit_v1';
const TITLE = 'drive.file.title_updated_v1';

describe('simulator Drive file change events', () => {
  let s: EventsSim;
  let docs: DocsTenant;
  let token: string;
  const subscribe = (file: string, type: string, t = token) => s.call(t, 'POST', `/open-apis/drive/v1/files/${file}/subscribe?file_type=${type}`);

  beforeAll(async () => {
    s = await startEventsSim([APP], [[APP.appId, TENANT]]);
    docs = s.data.docs(TENANT, { wikiDocuments: 6, largePages: 0, oversizePages: 0, archiveDocuments: 2, privateSpaceDocuments: 1, driveDocuments: 4 });
    token = await s.tenantToken(APP.appId, TENANT);
  });
  afterAll(async () => {
    await s.stop();
  });
  beforeEach(async () => {
    await s.sim.events.idle();
    s.receiver.clear();
    s.sim.events.setOptions({ ownerOnlyFileEvents: true });
  });

  it('subscribe: 1069603 without manage rights, 1069604 for a wrong type or a trashed file, 0 for a shared document', async () => {
    expect(await subscribe(docs.refs.privateDoc, 'docx')).toMatchObject({ status: 403, body: { code: 1069603 } });
    expect(await subscribe(docs.refs.drive.docx, 'sheet')).toMatchObject({ status: 400, body: { code: 1069604 } });
    docs.setManagers(docs.refs.drive.sheet, []);
    expect(await subscribe(docs.refs.drive.sheet, 'sheet')).toMatchObject({ status: 403, body: { code: 1069603 } });
    docs.setManagers(docs.refs.drive.sheet, undefined);
    expect((await subscribe(docs.refs.drive.sheet, 'sheet')).body.code).toBe(0);
    expect(await subscribe('fldcnWhatever', 'folder')).toMatchObject({ status: 400, body: { code: 1069602 } });
    expect((await subscribe(docs.refs.drive.docx, 'docx')).body.code).toBe(0);
  });

  it('an edit of a subscribed document: drive.file.edit_v1 with the editor; a rename reaches a manager only when allowed', async () => {
    const owner = docs.refs.owners[0]!;
    docs.edit(docs.refs.drive.docx, { append: 'A new paragraph.', by: owner });
    docs.edit(docs.refs.archiveFolder, { append: 'not subscribed' });
    await s.sim.events.idle();
    const [edit] = s.receiver.acked(EDIT);
    expect(s.receiver.requests).toHaveLength(1);
    expect(edit!.signatureOk).toBe(true);
    expect(edit!.event).toEqual({
      file_type: 'docx',
      file_token: docs.refs.drive.docx,
      operator_id_list: [{ union_id: `on_${owner.slice(3)}`, open_id: owner }],
      subscriber_id_list: [],
    });

    // The app manages (does not own) the team handbook: no title event by default.
    s.receiver.clear();
    docs.rename(docs.refs.drive.docx, 'Handbook v2');
    await s.sim.events.idle();
    expect(s.receiver.requests).toHaveLength(0);
    s.sim.events.setOptions({ ownerOnlyFileEvents: false });
    docs.rename(docs.refs.drive.docx, 'Handbook v3');
    await s.sim.events.idle();
    expect(s.receiver.acked().map((p) => p.type)).toEqual([TITLE]);
  });

  it("the app's own documents: title_updated, trashed and deleted events (header resource_id as the pages show)", async () => {
    const mine = docs.addDocument({ type: 'docx', title: 'App doc', in: { folder: docs.refs.appRoot } });
    const gone = docs.addDocument({ type: 'sheet', title: 'App sheet', in: { folder: docs.refs.appRoot } });
    expect((await subscribe(mine.token, 'docx')).body.code).toBe(0);
    expect((await subscribe(gone.token, 'sheet')).body.code).toBe(0);
    docs.edit(mine.token, { title: 'App doc, renamed', append: 'and more text' });
    await s.sim.events.idle();
    expect(s.receiver.acked().map((p) => p.type).sort()).toEqual([EDIT, TITLE]);
    const [title] = s.receiver.acked(TITLE);
    expect(title!.event).toMatchObject({ file_type: 'docx', file_token: mine.token, operator_id: { union_id: '', open_id: '' }, subscriber_id_list: [] });
    expect(title!.body.header).toMatchObject({ resource_id: mine.token, user_list: [] });

    s.receiver.clear();
    docs.delete(mine.token);
    docs.delete(gone.token, { permanent: true });
    await s.sim.events.idle();
    expect(s.receiver.acked().map((p) => `${p.type}:${p.event.file_token}`).sort()).toEqual(
      [`drive.file.deleted_v1:${gone.token}`, `drive.file.trashed_v1:${mine.token}`].sort(),
    );
  });

  it('a user-token subscription: the owner is listed in subscriber_id_list and receives the owner-only events', async () => {
    const owner = docs.refs.owners[0]!;
    s.sim.addUser(TENANT, { openId: owner, name: 'Owner 1' });
    const { code } = redirectParams(s.sim.authorizeAs(APP.appId, { openId: owner, tenantKey: TENANT }, { redirect_uri: REDIRECT, scope: 'drive:drive' }));
    const userToken = (await exchange(s.sim, { appId: APP.appId, appSecret: `${APP.appId}-secret` }, code!)).body.access_token!;
    expect((await subscribe(docs.refs.drive.doc, 'doc', userToken)).body.code).toBe(0);
    expect((await s.call(userToken, 'GET', `/open-apis/drive/v1/files/${docs.refs.drive.doc}/get_subscribe?file_type=doc`)).body.data).toEqual({ is_subscribe: true });
    // The app's own (tenant-token) subscription is a different one.
    expect((await s.call(token, 'GET', `/open-apis/drive/v1/files/${docs.refs.drive.doc}/get_subscribe?file_type=doc`)).body.data).toEqual({ is_subscribe: false });
    docs.rename(docs.refs.drive.doc, 'Legacy notes (old)');
    await s.sim.events.idle();
    const [title] = s.receiver.acked(TITLE);
    expect(title!.event.subscriber_id_list).toEqual([{ union_id: `on_${owner.slice(3)}`, open_id: owner }]);
    expect(title!.body.header.user_list).toEqual([{ union_id: `on_${owner.slice(3)}` }]);
  });
});
