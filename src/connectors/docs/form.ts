import type { ModuleForm } from '../../sync/module-form.js';

/** A docs source: a URL as copied, a wiki space id (digits), else a Drive folder token. */
function docsSourceEntry(line: string): unknown {
  if (/^https?:\/\//i.test(line)) return { url: line };
  return /^\d+$/.test(line) ? { wikiSpaceId: line } : { folderToken: line };
}

function docsSourceLine(entry: unknown): string {
  const e = (entry ?? {}) as { url?: unknown; wikiSpaceId?: unknown; folderToken?: unknown };
  return [e.url, e.wikiSpaceId, e.folderToken].find((v): v is string => typeof v === 'string') ?? '';
}

/** The module's settings on the tenant admin page. */
export const docsForm: ModuleForm = {
  title: 'Docs',
  blurb: 'Wiki, Drive and document content as Markdown, for knowledge bases.',
  fields: [
    {
      kind: 'lines',
      name: 'sources',
      label: 'Sources',
      hint:
        'One per line: a wiki space, wiki page, Drive folder or document URL as copied from the browser (a page or folder brings ' +
        'everything below it), or a wiki space id. The app must be added to each space, folder or document.',
      optional: false,
      placeholder: 'https://acme.feishu.cn/wiki/wikcnAbC123',
      toEntry: docsSourceEntry,
      fromEntry: docsSourceLine,
    },
    { kind: 'lines', name: 'include', label: 'Include paths', hint: 'Regular expressions on "Space / parent / title", one per line; empty keeps all.', optional: true },
    { kind: 'lines', name: 'exclude', label: 'Exclude paths', hint: 'Regular expressions, one per line; exclude wins over include.', optional: true },
    { kind: 'lines', name: 'types', label: 'Kinds', hint: 'One per line: docx, doc, sheet, bitable, file; empty means docx and file.', optional: true },
    {
      kind: 'integer',
      name: 'treeRefreshMinutes',
      label: 'Tree refresh (minutes)',
      hint: 'How often a run lists every wiki and folder tree; runs between only check the known documents (new pages and moves wait for the next listing). 0: every run.',
      min: 0,
      max: 10080,
      defaultValue: 60,
    },
    { kind: 'lines', name: 'sinks', label: 'Knowledge bases', hint: 'Names of the sinks (RAGFlow or Dify) to feed, one per line.', optional: true },
  ],
};
