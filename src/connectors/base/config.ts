import { Type, type Static } from '@sinclair/typebox';

// Makes the `errorMessage`s below the messages users see.
import '../../sync/config-errors.js';
import { Identity } from '../../sync/identity.js';

/** Lark brand hosts: `<tenant>.feishu.cn` (Feishu) and `<tenant>.larksuite.com` (Lark). */
const HOST = String.raw`([A-Za-z0-9-]+\.)+(feishu\.cn|larksuite\.com)`;
/**
 * A Base in Drive (`/base/<app_token>`) or hosted in a wiki (`/wiki/<node_token>`), always with the
 * `table` query parameter: larksync syncs tables, and a URL without one does not name a table.
 */
export const BASE_URL_PATTERN = String.raw`^https://${HOST}/(base|wiki)/[A-Za-z0-9]+/?\?([^#]*&)?table=tbl[A-Za-z0-9]+([&#].*)?$`;

const AppToken = Type.String({
  pattern: '^[A-Za-z0-9]+$',
  maxLength: 100,
  errorMessage: 'appToken must be a Base app_token (the letters and digits after /base/ in the Base URL)',
});
const TableId = Type.String({
  pattern: '^tbl[A-Za-z0-9]+$',
  maxLength: 50,
  errorMessage: 'tableId must be a table id starting with "tbl" (the `table` parameter of the Base URL)',
});
const ViewId = Type.String({
  pattern: '^vew[A-Za-z0-9]+$',
  maxLength: 50,
  errorMessage: 'viewId must be a view id starting with "vew" (the `view` parameter of the Base URL)',
});
const BaseUrl = Type.String({
  pattern: BASE_URL_PATTERN,
  maxLength: 2000,
  errorMessage:
    'url must be a Base URL like https://<tenant>.feishu.cn/base/<app_token>?table=<table_id> or a wiki-hosted one like ' +
    'https://<tenant>.feishu.cn/wiki/<node_token>?table=<table_id> (.larksuite.com works too)',
});

/**
 * One table to sync. The field-level object comes first so a malformed value is reported under
 * its own name; the union then only decides which form of entry this is.
 */
const TableEntry = Type.Intersect([
  Type.Object(
    { appToken: Type.Optional(AppToken), tableId: Type.Optional(TableId), viewId: Type.Optional(ViewId), url: Type.Optional(BaseUrl) },
    { additionalProperties: false, errorMessage: 'a table entry is an object with only appToken, tableId, viewId or url' },
  ),
  Type.Union(
    [
      Type.Object({ appToken: Type.String(), tableId: Type.String(), url: Type.Optional(Type.Never()) }),
      Type.Object({ url: Type.String(), appToken: Type.Optional(Type.Never()), tableId: Type.Optional(Type.Never()), viewId: Type.Optional(Type.Never()) }),
    ],
    {
      errorMessage:
        'each table needs either both appToken and tableId (viewId optional), or a url (with the view in the URL) - not both',
    },
  ),
]);

export const BaseConfig = Type.Object(
  {
    tables: Type.Array(TableEntry, {
      minItems: 1,
      maxItems: 100,
      errorMessage: 'tables must list 1 to 100 tables, each { appToken, tableId, viewId? } or { url }',
    }),
    identity: Identity,
  },
  { additionalProperties: false },
);
export type BaseConfigType = Static<typeof BaseConfig>;
export type BaseTableEntry = BaseConfigType['tables'][number];

/** What a config entry names before any Lark call: a table by ids, or a wiki node still to resolve. */
export type TableRef =
  | { kind: 'ids'; appToken: string; tableId: string; viewId: string | null }
  | { kind: 'wiki'; nodeToken: string; tableId: string; viewId: string | null };

/** Reads a validated entry; URLs are parsed here (the schema already checked their shape). */
export function tableRef(entry: BaseTableEntry): TableRef | undefined {
  if (entry.appToken !== undefined && entry.tableId !== undefined) {
    return { kind: 'ids', appToken: entry.appToken, tableId: entry.tableId, viewId: entry.viewId ?? null };
  }
  if (entry.url === undefined) return undefined;
  return parseBaseUrl(entry.url);
}

export function parseBaseUrl(raw: string): TableRef | undefined {
  if (!new RegExp(BASE_URL_PATTERN).test(raw)) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  const [, kind, token] = url.pathname.split('/');
  const tableId = url.searchParams.get('table');
  const view = url.searchParams.get('view');
  if (!token || !tableId || !/^tbl[A-Za-z0-9]+$/.test(tableId)) return undefined;
  // The UI also puts non-view values in `view` (none documented); only a real view id narrows the listing.
  const viewId = view && /^vew[A-Za-z0-9]+$/.test(view) ? view : null;
  if (kind === 'base') return { kind: 'ids', appToken: token, tableId, viewId };
  if (kind === 'wiki') return { kind: 'wiki', nodeToken: token, tableId, viewId };
  return undefined;
}
