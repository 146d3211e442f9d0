import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { startDataClient, type DataClient } from './data-client.js';
import { caller, download, listFolder, type Call, type DriveFile, type FilesPage } from './docs-client.js';

// Drive over raw HTTP against shared/lark/docs-wiki.md §1, docs-content.md §5.4-5.5 and
// corrections.md: folder listings (page_size default 100 max 200, seconds, order, root listing
// without paging or shortcuts), metas batch_query (1-200 docs, times, failed_list), file
// downloads, refusals, and test hooks changing Drive between calls.

const TENANT = 'tk-sim-docs-drive';
const FILES = '/open-apis/drive/v1/files';
const METAS = '/open-apis/drive/v1/metas/batch_query';

interface MetasData {
  metas: Array<{ doc_token: string; doc_type: string; title: string; owner_id: string; create_time: string; latest_modify_user: string; latest_modify_time: string; url?: string }>;
  failed_list: Array<{ token: string; code: number }>;
}

describe('simulator Drive: folder listings, metas, downloads', () => {
  let client: DataClient;
  let call: Call;
  let token: string;
  let docs: DocsTenant;

  beforeAll(async () => {
    client = await startDataClient([TENANT], { enforceRateLimits: false });
    docs = client.data.docs(TENANT, { wikiDocuments: 20, largePages: 0, oversizePages: 0 });
    call = caller(client.sim);
    token = await client.tenantToken(TENANT);
  });
  afterAll(async () => {
    await client.stop();
  });

  const files = (query: string) => call<FilesPage>(token, 'GET', `${FILES}${query}`);

  it("lists the app's root at once: no paging, no shortcuts, whatever page_size says", async () => {
    const root = docs.object(docs.refs.appRoot)!;
    expect(root.children!.map((t) => docs.object(t)!.type)).toContain('shortcut');
    for (const query of ['', '?page_size=1']) {
      const res = await files(query);
      expect(res.status).toBe(200);
      expect(res.body.code).toBe(0);
      const data = res.body.data!;
      expect(data.has_more).toBe(false);
      expect(data.next_page_token).toBeUndefined();
      expect(data.files.map((f) => f.name).sort()).toEqual(['App notes 1', 'App notes 2', 'App notes 3']);
      expect(data.files.every((f) => f.type === 'docx' && f.parent_token === docs.refs.appRoot)).toBe(true);
    }
  });

  it('pages a folder: 100 by default, at most 200, next_page_token until has_more is false', async () => {
    const archive = docs.refs.archiveFolder;
    const first = (await files(`?folder_token=${archive}`)).body.data!;
    expect(first.files).toHaveLength(100);
    expect(first.has_more).toBe(true);
    expect(typeof first.next_page_token).toBe('string');
    expect(first).not.toHaveProperty('page_token');
    const rest = (await files(`?folder_token=${archive}&page_size=200&page_token=${first.next_page_token}`)).body.data!;
    expect(rest.files).toHaveLength(130);
    expect(rest.has_more).toBe(false);
    expect(rest.next_page_token).toBeUndefined();
    const tokens = [...first.files, ...rest.files].map((f) => f.token);
    expect(new Set(tokens).size).toBe(230);
    expect([...tokens].sort()).toEqual([...docs.object(archive)!.children!].sort());

    for (const size of [0, 201]) {
      const res = await files(`?folder_token=${archive}&page_size=${size}`);
      expect([res.status, res.body.code]).toEqual([400, 1064001]);
    }
    expect((await files(`?folder_token=${archive}&page_token=garbage`)).body.code).toBe(1061002);
    expect((await files(`?folder_token=${archive}&order_by=Name`)).body.code).toBe(1061002);
  });

  it('answers times in seconds, newest edit first by default, or by creation ascending', async () => {
    const archive = docs.refs.archiveFolder;
    const byEdit = (await files(`?folder_token=${archive}&page_size=200`)).body.data!.files;
    for (const f of byEdit) {
      expect(f.created_time).toMatch(/^\d{10}$/);
      expect(f.modified_time).toMatch(/^\d{10}$/);
      const o = docs.object(f.token)!;
      expect([Number(f.created_time), Number(f.modified_time)]).toEqual([o.created, o.edited]);
      expect(f.url).toBe(`https://${TENANT}.feishu.cn/docx/${f.token}`);
      expect(f.owner_id).toBe(o.owner);
    }
    const edits = byEdit.map((f) => Number(f.modified_time));
    expect(edits).toEqual([...edits].sort((a, b) => b - a));
    const byCreation = (await files(`?folder_token=${archive}&page_size=200&order_by=CreatedTime&direction=ASC`)).body.data!.files.map((f) => Number(f.created_time));
    expect(byCreation).toEqual([...byCreation].sort((a, b) => a - b));
  });

  it('walks the team drive down to its deepest folder; shortcuts carry shortcut_info', async () => {
    docs.addShortcut(docs.refs.drive.sheet, { folder: docs.refs.teamFolder }, 'Budget (shortcut)');
    const seen = new Map<string, DriveFile & { depth: number }>();
    let level = [{ folder: docs.refs.teamFolder, depth: 1 }];
    while (level.length > 0) {
      const next: typeof level = [];
      for (const { folder, depth } of level) {
        for (const f of await listFolder(call, token, folder, 7)) {
          expect(f.parent_token).toBe(folder);
          seen.set(f.token, { ...f, depth });
          if (f.type === 'folder') next.push({ folder: f.token, depth: depth + 1 });
        }
      }
      level = next;
    }
    expect(seen.get(docs.refs.deepFolder)?.depth).toBe(3);
    const types = new Set([...seen.values()].map((f) => f.type));
    for (const t of ['docx', 'doc', 'sheet', 'bitable', 'mindnote', 'file', 'folder', 'shortcut']) expect(types).toContain(t);
    const shortcut = [...seen.values()].find((f) => f.name === 'Budget (shortcut)')!;
    expect(shortcut.type).toBe('shortcut');
    expect(shortcut.shortcut_info).toEqual({ target_type: 'sheet', target_token: docs.refs.drive.sheet });
    expect(seen.get(docs.refs.drive.sheet)?.url).toBe(`https://${TENANT}.feishu.cn/sheets/${docs.refs.drive.sheet}`);
    expect(seen.get(docs.refs.drive.sheet)?.shortcut_info).toBeUndefined();
  });

  it('cuts a listing short on request: has_more without next_page_token, the next page whole', async () => {
    const archive = docs.refs.archiveFolder;
    client.data.truncateListings('drive.files.list');
    const cut = (await files(`?folder_token=${archive}&page_size=10`)).body.data!;
    expect(cut.files).toHaveLength(10);
    expect(cut.has_more).toBe(true);
    expect(cut).not.toHaveProperty('next_page_token');
    expect(typeof (await files(`?folder_token=${archive}&page_size=10`)).body.data!.next_page_token).toBe('string');
  });

  it('refuses: a folder not shared with the app 403/1061004, unknown 404/1061003, trashed 404/1061007, a document 1061002', async () => {
    const refused = await files(`?folder_token=${docs.refs.privateFolder}`);
    expect([refused.status, refused.body.code]).toEqual([403, 1061004]);
    const unknown = await files('?folder_token=fldcnNoSuchFolder0000000000');
    expect([unknown.status, unknown.body.code]).toEqual([404, 1061003]);
    expect((await files(`?folder_token=${docs.refs.drive.docx}`)).body.code).toBe(1061002);
    const doomed = docs.addDocument({ type: 'folder', title: 'Doomed', in: { folder: docs.refs.teamFolder } });
    docs.delete(doomed.token);
    const trashed = await files(`?folder_token=${doomed.token}`);
    expect([trashed.status, trashed.body.code]).toEqual([404, 1061007]);
    docs.delete(doomed.token, { permanent: true });
    expect((await files(`?folder_token=${doomed.token}`)).body.code).toBe(1061003);
  });

  it('metas batch_query: 1 to 200 documents, times in seconds matching the listing, failed_list codes', async () => {
    const listed = (await files(`?folder_token=${docs.refs.archiveFolder}&page_size=200`)).body.data!.files;
    const asked = listed.map((f) => ({ doc_token: f.token, doc_type: f.type }));
    const res = await call<MetasData>(token, 'POST', METAS, { request_docs: asked });
    expect(res.body.code).toBe(0);
    expect(res.body.data!.metas).toHaveLength(200);
    expect(res.body.data!.failed_list).toEqual([]);
    for (const [i, m] of res.body.data!.metas.entries()) {
      const f = listed[i]!;
      expect(m).toMatchObject({ doc_token: f.token, doc_type: 'docx', title: f.name, create_time: f.created_time, latest_modify_time: f.modified_time });
      expect(m.latest_modify_user).toBe(docs.object(f.token)!.editedBy);
      expect(m).not.toHaveProperty('url');
    }
    for (const request_docs of [[...asked, asked[0]], []]) {
      const bad = await call(token, 'POST', METAS, { request_docs });
      expect([bad.status, bad.body.code]).toEqual([400, 1061002]);
    }

    const trashed = docs.addDocument({ in: { folder: docs.refs.teamFolder } });
    docs.delete(trashed.token);
    const mixed = await call<MetasData>(token, 'POST', METAS, {
      request_docs: [
        { doc_token: docs.refs.privateDoc, doc_type: 'docx' },
        { doc_token: 'doxcnNoSuchDocument00000000', doc_type: 'docx' },
        { doc_token: docs.refs.drive.docx, doc_type: 'sheet' },
        { doc_token: docs.refs.drive.docx, doc_type: 'slides' },
        { doc_token: trashed.token, doc_type: 'docx' },
        { doc_token: docs.refs.drive.sheet, doc_type: 'sheet' },
        { doc_token: docs.refs.wikiDoc.node, doc_type: 'wiki' },
        { doc_token: docs.refs.teamFolder, doc_type: 'folder' },
      ],
      with_url: true,
    });
    expect(mixed.body.data!.failed_list).toEqual([
      { token: docs.refs.privateDoc, code: 970003 },
      { token: 'doxcnNoSuchDocument00000000', code: 970005 },
      { token: docs.refs.drive.docx, code: 970005 },
      { token: docs.refs.drive.docx, code: 970002 },
      { token: trashed.token, code: 970005 },
    ]);
    expect(mixed.body.data!.metas.map((m) => [m.doc_type, m.url])).toEqual([
      ['sheet', `https://${TENANT}.feishu.cn/sheets/${docs.refs.drive.sheet}`],
      ['wiki', `https://${TENANT}.feishu.cn/wiki/${docs.refs.wikiDoc.node}`],
      ['folder', `https://${TENANT}.feishu.cn/drive/folder/${docs.refs.teamFolder}`],
    ]);
    const wikiDoc = docs.object(docs.refs.wikiDoc.document)!;
    expect(mixed.body.data!.metas[1]).toMatchObject({ title: wikiDoc.title, latest_modify_time: String(wikiDoc.edited) });
  });

  it('shows edits, renames, moves and deletions in listings and metas', async () => {
    const folder = docs.addDocument({ type: 'folder', title: 'Scratch', in: { folder: docs.refs.teamFolder } });
    const other = docs.addDocument({ type: 'folder', title: 'Elsewhere', in: { folder: docs.refs.teamFolder } });
    const doc = docs.addDocument({ title: 'Draft', in: { folder: folder.token } });
    const meta = async () => (await call<MetasData>(token, 'POST', METAS, { request_docs: [{ doc_token: doc.token, doc_type: 'docx' }] })).body.data!;
    const before = (await listFolder(call, token, folder.token))[0]!;
    expect(before.name).toBe('Draft');
    const editor = docs.refs.owners[1]!;
    const t0 = Math.floor(Date.now() / 1000);
    docs.edit(doc.token, { append: 'A new paragraph.', by: editor });
    docs.edit(doc.token);
    const t1 = Math.floor(Date.now() / 1000);
    const after = (await listFolder(call, token, folder.token))[0]!;
    // Whole seconds, as Lark gives them: two edits within one second share their time.
    expect(Number(after.modified_time)).toBeGreaterThanOrEqual(Math.max(Number(before.modified_time), t0));
    expect(Number(after.modified_time)).toBeLessThanOrEqual(Math.max(Number(before.modified_time), t1));
    expect(after.created_time).toBe(before.created_time);
    expect((await meta()).metas[0]).toMatchObject({ latest_modify_time: after.modified_time, latest_modify_user: doc.owner });
    docs.edit(doc.token, { by: editor });
    expect((await meta()).metas[0]!.latest_modify_user).toBe(editor);

    docs.rename(doc.token, 'Final');
    expect((await listFolder(call, token, folder.token))[0]!.name).toBe('Final');
    docs.move(doc.token, { folder: other.token });
    expect(await listFolder(call, token, folder.token)).toEqual([]);
    expect((await listFolder(call, token, other.token)).map((f) => [f.token, f.parent_token])).toEqual([[doc.token, other.token]]);
    docs.delete(doc.token);
    expect(await listFolder(call, token, other.token)).toEqual([]);
    expect((await meta()).failed_list).toEqual([{ token: doc.token, code: 970005 }]);
    docs.restore(doc.token);
    expect((await listFolder(call, token, other.token)).map((f) => f.token)).toEqual([doc.token]);
    docs.delete(other.token, { permanent: true });
    expect((await meta()).failed_list).toEqual([{ token: doc.token, code: 970005 }]);
    expect(docs.object(doc.token)).toBeUndefined();
  });

  it('downloads files: PDF and Office bytes with content-type and size; documents and unshared files are refused', async () => {
    const get = (fileToken: string) => download(client.sim, token, `${FILES}/${fileToken}/download`);
    const pdf = await get(docs.refs.drive.pdf);
    expect(pdf.status).toBe(200);
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    expect(Number(pdf.headers.get('content-length'))).toBe(pdf.bytes.length);
    expect(pdf.headers.get('content-disposition')).toContain(encodeURIComponent('Contract.pdf'));
    expect(pdf.bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(pdf.bytes.toString('latin1').trimEnd().endsWith('%%EOF')).toBe(true);
    expect(pdf.bytes.toString('latin1')).toContain('(Contract.pdf) Tj');

    const word = await get(docs.refs.drive.docxFile);
    expect(word.headers.get('content-type')).toBe('application/vnd.openxmlformats-officedocument.wordprocessingml.document');
    expect(word.bytes.subarray(0, 4)).toEqual(Buffer.from([0x50, 0x4b, 0x03, 0x04]));
    expect(word.bytes.toString('utf8')).toContain('word/document.xml');
    const excel = await get(docs.refs.drive.xlsxFile);
    expect(excel.headers.get('content-type')).toBe('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
    expect(excel.bytes.toString('utf8')).toContain('xl/worksheets/sheet1.xml');

    docs.edit(docs.refs.drive.pdf);
    expect((await get(docs.refs.drive.pdf)).bytes.equals(pdf.bytes)).toBe(false);

    const notAFile = await call(token, 'GET', `${FILES}/${docs.refs.drive.docx}/download`);
    expect([notAFile.status, notAFile.body.code]).toEqual([400, 1061002]);
    const hidden = docs.addDocument({ type: 'file', ext: 'pdf', in: { folder: docs.refs.privateFolder } });
    const refused = await call(token, 'GET', `${FILES}/${hidden.token}/download`);
    expect([refused.status, refused.body.code]).toEqual([403, 1061004]);
    docs.share(hidden.token, 'app:*');
    expect((await get(hidden.token)).status).toBe(200);
  });
});
