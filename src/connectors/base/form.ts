import type { ModuleForm } from '../../sync/module-form.js';

/** A Base URL as copied from the browser, else `appToken tableId [viewId]` (spaces or slashes). */
function baseEntry(line: string): unknown {
  if (/^https?:\/\//i.test(line)) return { url: line };
  const [appToken, tableId, viewId, ...rest] = line.split(/[\s/]+/).filter(Boolean);
  // More than three parts is not a form we know: keep it whole, so the message names a bad url.
  if (rest.length > 0) return { url: line };
  return { appToken, tableId, ...(viewId === undefined ? {} : { viewId }) };
}

function baseLine(entry: unknown): string {
  const e = (entry ?? {}) as { url?: unknown; appToken?: unknown; tableId?: unknown; viewId?: unknown };
  if (typeof e.url === 'string') return e.url;
  return [e.appToken, e.tableId, e.viewId].filter((v): v is string => typeof v === 'string').join(' ');
}

/** The module's settings on the tenant admin page. */
export const baseForm: ModuleForm = {
  title: 'Base',
  blurb: 'Records and fields of Base (Bitable) tables.',
  fields: [
    {
      kind: 'lines',
      name: 'tables',
      label: 'Base tables',
      hint:
        'One table per line: paste the URL from the browser while the table is open (a Base or a wiki page; the URL must have ?table=tbl…), ' +
        'or write "appToken tableId [viewId]". The app must be added to each Base (… menu → More → Add document app).',
      optional: false,
      placeholder: 'https://acme.feishu.cn/wiki/wikcnAbC123?table=tblXyZ789&view=vewQwE456',
      toEntry: baseEntry,
      fromEntry: baseLine,
    },
  ],
};
