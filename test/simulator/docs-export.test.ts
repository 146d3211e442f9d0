import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { startDataClient, type DataClient } from './data-client.js';
import { caller, download, type Call } from './docs-client.js';

// Export tasks end to end against shared/lark/docs-wiki.md §4: create a task for a legacy doc, a
// docx, a sheet or a Base, poll it until job_status 0, download the bytes; refused requests,
// failed jobs, and the same-identity rule for polling.

const TENANT = 'tk-sim-docs-export';
const TASKS = '/open-apis/drive/v1/export_tasks';

interface Result {
  file_extension: string;
  type: string;
  file_name: string;
  file_token: string;
  file_size: number;
  job_error_msg: string;
  job_status: number;
  only_schema?: boolean;
}

describe('simulator export tasks', () => {
  let client: DataClient;
  let call: Call;
  let token: string;
  let docs: DocsTenant;

  beforeAll(async () => {
    client = await startDataClient([TENANT], { enforceRateLimits: false });
    docs = client.data.docs(TENANT, { wikiDocuments: 10, largePages: 0, oversizePages: 0, archiveDocuments: 5 });
    call = caller(client.sim);
    token = await client.tenantToken(TENANT);
  });
  afterAll(async () => {
    await client.stop();
  });

  const create = (body: Record<string, unknown>) => call<{ ticket: string }>(token, 'POST', TASKS, body);
  const poll = (ticket: string, doc: string, t = token) => call<{ result: Result }>(t, 'GET', `${TASKS}/${ticket}?token=${doc}`);
  /** Creates a task and polls it until it ends; returns the last result and the polls made. */
  const exportOf = async (body: Record<string, unknown>) => {
    const created = await create(body);
    expect(created.body.code).toBe(0);
    const ticket = created.body.data!.ticket;
    const statuses: number[] = [];
    for (let i = 0; i < 10; i += 1) {
      const r = (await poll(ticket, body.token as string)).body.data!.result;
      statuses.push(r.job_status);
      if (r.job_status === 0 || r.job_status === 3) return { ticket, result: r, statuses };
    }
    throw new Error('export did not end');
  };
  const fetchFile = (fileToken: string) => download(client.sim, token, `${TASKS}/file/${fileToken}/download`);

  it('exports a legacy doc to Word: created, in progress, done, downloaded', async () => {
    const { result, statuses } = await exportOf({ token: docs.refs.drive.doc, type: 'doc', file_extension: 'docx' });
    expect(statuses).toEqual([1, 0]);
    expect(result).toMatchObject({ file_extension: 'docx', type: 'doc', file_name: 'Legacy notes.docx', job_error_msg: '', job_status: 0 });
    expect(result.file_token).toMatch(/^boxcn/);
    const file = await fetchFile(result.file_token);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('application/vnd.openxmlformats-officedocument.wordprocessingml.document');
    expect(file.bytes.length).toBe(result.file_size);
    expect(file.bytes.subarray(0, 4)).toEqual(Buffer.from('PK\x03\x04', 'latin1'));
    const xml = file.bytes.toString('utf8');
    expect(xml).toContain('<w:t xml:space="preserve">Legacy notes</w:t>');
    expect(xml).toContain('word/document.xml');
  });

  it('exports a docx to PDF with its words, a sheet to CSV by sheet id, a Base to xlsx and a schema-only CSV', async () => {
    const doc = docs.addDocument({ title: 'Quarterly', in: { folder: docs.refs.teamFolder }, paragraphs: ['Revenue grew.', 'Costs fell.'] });
    const pdf = await exportOf({ token: doc.token, type: 'docx', file_extension: 'pdf' });
    const pdfFile = await fetchFile(pdf.result.file_token);
    expect(pdfFile.headers.get('content-type')).toBe('application/pdf');
    expect(pdfFile.bytes.toString('latin1')).toMatch(/^%PDF-1\.4\n[\s\S]*\(Quarterly\) Tj T\* \(Revenue grew\.\) Tj T\* \(Costs fell\.\) Tj/);

    const sheet = docs.object(docs.refs.drive.sheet)!;
    const csv = await exportOf({ token: sheet.token, type: 'sheet', file_extension: 'csv', sub_id: sheet.subIds![1] });
    const csvFile = await fetchFile(csv.result.file_token);
    expect(csvFile.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const rows = csvFile.bytes.toString('utf8').trimEnd().split('\r\n');
    expect(rows[0]).toBe('Item,Amount,Quarter,Comment');
    expect(rows).toHaveLength(13);

    const base = docs.object(docs.refs.drive.bitable)!;
    const xlsx = await exportOf({ token: base.token, type: 'bitable', file_extension: 'xlsx' });
    expect(xlsx.result.only_schema).toBe(false);
    const xlsxFile = await fetchFile(xlsx.result.file_token);
    expect(xlsxFile.bytes.toString('utf8')).toContain('xl/worksheets/sheet1.xml');
    const schema = await exportOf({ token: base.token, type: 'bitable', file_extension: 'csv', sub_id: base.subIds![0], only_schema: true });
    expect(schema.result.only_schema).toBe(true);
    expect((await fetchFile(schema.result.file_token)).bytes.toString('utf8')).toBe('Name,Status,Owner,Notes\r\n');
  });

  it('refuses bad requests: CSV without sub_id, an extension not for the type, a type mismatch, unknown or unshared documents', async () => {
    const sheet = docs.refs.drive.sheet;
    const cases: Array<[Record<string, unknown>, number, number]> = [
      [{ token: sheet, type: 'sheet', file_extension: 'csv' }, 400, 1061002],
      [{ token: sheet, type: 'sheet', file_extension: 'csv', sub_id: 'nosuch' }, 400, 1061002],
      [{ token: sheet, type: 'sheet', file_extension: 'pdf' }, 400, 1061002],
      [{ token: docs.refs.drive.docx, type: 'doc', file_extension: 'docx' }, 400, 1061002],
      [{ token: docs.refs.drive.docx, type: 'pages', file_extension: 'docx' }, 400, 1061002],
      [{ type: 'docx', file_extension: 'docx' }, 400, 1061002],
      [{ token: 'doxcnNoSuchDocument00000000', type: 'docx', file_extension: 'docx' }, 404, 1061003],
      [{ token: docs.refs.privateDoc, type: 'docx', file_extension: 'docx' }, 403, 1061004],
    ];
    for (const [body, status, code] of cases) {
      const res = await create(body);
      expect([res.status, res.body.code], JSON.stringify(body)).toEqual([status, code]);
    }
  });

  it('polls by ticket and document token; failed jobs answer job_status 3 with a message', async () => {
    const created = (await create({ token: docs.refs.drive.docx, type: 'docx', file_extension: 'docx' })).body.data!.ticket;
    expect((await poll(created, docs.refs.drive.sheet)).body.code).toBe(1061002);
    const unknown = await poll('nosuchticket', docs.refs.drive.docx);
    expect([unknown.status, unknown.body.code]).toEqual([404, 1061003]);

    docs.failNextExports();
    const failed = await exportOf({ token: docs.refs.drive.docx, type: 'docx', file_extension: 'pdf' });
    expect(failed.result).toMatchObject({ job_status: 3, file_token: '', file_size: 0 });
    expect(failed.result.job_error_msg).not.toBe('');

    const doc = docs.addDocument({ in: { folder: docs.refs.teamFolder } });
    const ticket = (await create({ token: doc.token, type: 'docx', file_extension: 'docx' })).body.data!.ticket;
    docs.delete(doc.token);
    expect((await poll(ticket, doc.token)).body.data!.result.job_status).toBe(1);
    const gone = (await poll(ticket, doc.token)).body.data!.result;
    expect(gone.job_status).toBe(3);
    expect(gone.job_error_msg).toMatch(/deleted/);

    docs.exportPolls = 0;
    const quick = await exportOf({ token: docs.refs.drive.docx, type: 'docx', file_extension: 'docx' });
    expect(quick.statuses).toEqual([0]);
    docs.exportPolls = 1;
    expect(docs.count('drive.export.get', { code: 0 })).toBeGreaterThan(5);
  });
});
