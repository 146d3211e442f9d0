import type ExcelJS from 'exceljs';
import { OneAtATime } from '../../runtime/one-at-a-time.js';
import { SyncError } from '../../sync/sync-errors.js';
import type { SyncContext } from '../../sync/sync-module.js';
import { blocksToMarkdown } from './blocks-markdown.js';
import type { DocsConfigType } from './config.js';
import { CONTENT_TOO_LARGE, type LarkBlock, type LarkBlocksPage, type LarkExportResult } from './lark-types.js';

/** Fetches need Lark only: a sync phase and a change event's re-read both pass theirs. */
type Ctx = Pick<SyncContext<DocsConfigType>, 'lark'>;

/** A document's body as Markdown, how it was obtained, and its revision when Lark gave one. */
export interface Fetched {
  markdown: string;
  /** docx revision_id, read before the body: the body is of this revision or a later one */
  revision: number | null;
  via: 'markdown' | 'blocks' | 'export';
  /** when the read began (this clock, ms): Lark served the body after it */
  startedAt: number;
}

/** A docx's current revision_id (its own 5/s budget), or null when Lark gave none. */
export async function docxRevision(ctx: Ctx, token: string): Promise<number | null> {
  const d = await ctx.lark.call<{ document?: { revision_id?: number } }>('docx.document.get', {
    method: 'GET',
    path: `/open-apis/docx/v1/documents/${encodeURIComponent(token)}`,
    endpoint: '/open-apis/docx/v1/documents/:document_id',
  });
  return typeof d.document?.revision_id === 'number' ? d.document.revision_id : null;
}

/** The blocks API's maximum page (docs-content.md §5.3). */
const BLOCKS_PAGE = 500;
/** Export task polls before giving up for this run (the next run asks again). */
const EXPORT_POLLS = 30;
const EXPORT_POLL_MS = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A docx: its revision from `GET /docx/v1/documents/:id`, then `GET /docs/v1/content` (Markdown,
 * docs-content.md §5.1). The revision is read first, so the body is of that revision or a later
 * one: a later check that finds the same revision proves the stored body current, which edit
 * times (whole seconds) cannot when an edit fell in the second of the read (content.phase.ts).
 * Over 10 MB (2889925) the blocks are read (500 a page) and rendered here instead.
 */
export async function fetchDocx(ctx: Ctx, token: string): Promise<Fetched> {
  const startedAt = Date.now();
  // Its failure is reported through the content call (the same document, the same access).
  const revision = await docxRevision(ctx, token).catch(() => null);
  try {
    const data = await ctx.lark.call<{ content?: string }>('docs.content', {
      method: 'GET',
      path: '/open-apis/docs/v1/content',
      query: { doc_token: token, doc_type: 'docx', content_type: 'markdown' },
    });
    return { markdown: data.content ?? '', revision, via: 'markdown', startedAt };
  } catch (err) {
    if (!(err instanceof SyncError) || err.larkCode !== CONTENT_TOO_LARGE) throw err;
  }
  return rendering.run(async () => ({ markdown: blocksToMarkdown(await readBlocks(ctx, token)), revision, via: 'blocks' as const, startedAt }));
}

/**
 * Documents rendered from their blocks go one at a time in a process: each holds its blocks and
 * its Markdown, 30-40 MB while it renders, and a content page reads ten documents at once (two
 * oversize pages of one page together set the docs bench's peak memory).
 */
const rendering = new OneAtATime();

/** Every block of a docx, 500 a page. */
async function readBlocks(ctx: Ctx, token: string): Promise<LarkBlock[]> {
  const blocks: LarkBlock[] = [];
  let pageToken: string | undefined;
  for (let guard = 0; guard < 10_000; guard += 1) {
    const page = await ctx.lark.call<LarkBlocksPage>('docx.blocks', {
      method: 'GET',
      path: `/open-apis/docx/v1/documents/${encodeURIComponent(token)}/blocks`,
      endpoint: '/open-apis/docx/v1/documents/:document_id/blocks',
      query: { page_size: BLOCKS_PAGE, page_token: pageToken, document_revision_id: -1 },
    });
    blocks.push(...(page.items ?? []));
    if (!page.has_more || !page.page_token) break;
    pageToken = page.page_token;
  }
  return blocks;
}

/**
 * Documents no content API serves (docs-wiki.md §4): a legacy doc is exported as .docx and read
 * with mammoth; a sheet or a Base as .xlsx, each sheet or table a Markdown table (exceljs). The
 * task is polled with the identity that created it; one that does not finish within the polls
 * fails this document for this run, and the next run asks again.
 */
export async function fetchExport(ctx: Ctx, token: string, type: 'doc' | 'sheet' | 'bitable'): Promise<Fetched> {
  const startedAt = Date.now();
  const ext = type === 'doc' ? 'docx' : 'xlsx';
  const created = await ctx.lark.call<{ ticket?: string }>('drive.export.create', {
    method: 'POST',
    path: '/open-apis/drive/v1/export_tasks',
    body: { file_extension: ext, token, type },
  });
  if (!created.ticket) throw new SyncError('upstream_unavailable', `export of ${type} ${token}: Lark returned no ticket`);
  let result: LarkExportResult | undefined;
  for (let poll = 0; poll < EXPORT_POLLS; poll += 1) {
    if (poll > 0) await sleep(EXPORT_POLL_MS);
    const data = await ctx.lark.call<{ result?: LarkExportResult }>('drive.export.get', {
      method: 'GET',
      path: `/open-apis/drive/v1/export_tasks/${encodeURIComponent(created.ticket)}`,
      endpoint: '/open-apis/drive/v1/export_tasks/:ticket',
      query: { token },
    });
    result = data.result;
    if (result?.job_status === 0 && result.file_token) break;
    // 0 = done (docs-wiki.md §4); other values are in progress or failed (unconfirmed): one that
    // carries an error message is taken as failed.
    if (result?.job_error_msg) throw new SyncError('upstream_unavailable', `export of ${type} ${token} failed: ${result.job_error_msg}`);
  }
  if (result?.job_status !== 0 || !result.file_token) {
    throw new SyncError('upstream_unavailable', `export of ${type} ${token} did not finish within ${EXPORT_POLLS} polls; the next run asks again`);
  }
  const bytes = await ctx.lark.download('drive.export.download', {
    method: 'GET',
    path: `/open-apis/drive/v1/export_tasks/file/${encodeURIComponent(result.file_token)}/download`,
    endpoint: '/open-apis/drive/v1/export_tasks/file/:file_token/download',
  });
  const markdown = type === 'doc' ? await docxToMarkdown(bytes) : await xlsxToMarkdown(bytes);
  return { markdown, revision: null, via: 'export', startedAt };
}

/**
 * exceljs and mammoth are loaded on the first export, not at startup: together they hold about
 * 29 MiB of every larksync process's memory, and only legacy docs, sheets and Bases need them.
 */
const loadMammoth = async () => (await import('mammoth')).default;
const loadExcel = async () => (await import('exceljs')).default;

async function docxToMarkdown(bytes: Buffer): Promise<string> {
  const mammoth = await loadMammoth();
  // mammoth's Markdown writer is marked deprecated in favour of HTML, but it is kept and is what a
  // plain-text knowledge base needs; HTML would need a second library to turn it into Markdown.
  const convert = (mammoth as unknown as { convertToMarkdown(input: { buffer: Buffer }): Promise<{ value: string }> }).convertToMarkdown;
  const out = await convert({ buffer: bytes }).catch((err: unknown) => {
    throw new SyncError('upstream_refused', `the exported .docx could not be read: ${(err as Error).message}`);
  });
  return out.value;
}

const cellText = (v: ExcelJS.CellValue): string => {
  if (v === null || v === undefined) return '';
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') {
    if ('richText' in v) return v.richText.map((r) => r.text).join('');
    if ('text' in v && typeof v.text === 'string') return v.text;
    if ('result' in v) return cellText(v.result as ExcelJS.CellValue);
    if ('error' in v) return String(v.error);
    return JSON.stringify(v);
  }
  return String(v);
};

async function xlsxToMarkdown(bytes: Buffer): Promise<string> {
  const Excel = await loadExcel();
  const book = new Excel.Workbook();
  try {
    await book.xlsx.load(bytes as unknown as ArrayBuffer);
  } catch (err) {
    throw new SyncError('upstream_refused', `the exported .xlsx could not be read: ${(err as Error).message}`);
  }
  const parts: string[] = [];
  book.eachSheet((sheet) => {
    const rows: string[][] = [];
    sheet.eachRow({ includeEmpty: false }, (row) => {
      const values = Array.isArray(row.values) ? row.values.slice(1) : [];
      rows.push(values.map((v) => cellText(v as ExcelJS.CellValue).replaceAll('|', '\\|').replace(/\r?\n/g, '<br>')));
    });
    const width = Math.max(0, ...rows.map((r) => r.length));
    parts.push(`## ${sheet.name}`);
    if (width === 0) return;
    const pad = (r: string[]) => `| ${Array.from({ length: width }, (_, i) => r[i] ?? '').join(' | ')} |`;
    parts.push([pad(rows[0]!), `|${' --- |'.repeat(width)}`, ...rows.slice(1).map(pad)].join('\n'));
  });
  return `${parts.join('\n\n')}\n`;
}
