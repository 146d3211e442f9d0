/** The parts of Drive, wiki and docs answers that larksync reads (docs-wiki.md, docs-content.md); the rest stays in `raw`. */

/** `GET /drive/v1/files` item (docs-wiki.md §1, docs-content.md §5.5). Times are seconds as strings. */
export interface LarkDriveFile {
  token?: string;
  name?: string;
  type?: string;
  parent_token?: string;
  url?: string;
  shortcut_info?: { target_type?: string; target_token?: string };
  created_time?: string;
  modified_time?: string;
  owner_id?: string;
}

export interface LarkDriveFilesPage {
  files?: LarkDriveFile[] | null;
  has_more?: boolean;
  next_page_token?: string;
}

/** A wiki space (docs-wiki.md §2.1). */
export interface LarkWikiSpace {
  space_id?: string;
  name?: string;
}

export interface LarkWikiSpacesPage {
  items?: LarkWikiSpace[] | null;
  has_more?: boolean;
  page_token?: string;
}

/** A wiki node (docs-wiki.md §2.2). Times are seconds as strings. */
export interface LarkWikiNode {
  space_id?: string;
  node_token?: string;
  obj_token?: string;
  obj_type?: string;
  parent_node_token?: string;
  node_type?: string;
  has_child?: boolean;
  title?: string;
  obj_create_time?: string;
  obj_edit_time?: string;
  node_create_time?: string;
  owner?: string;
  creator?: string;
  url?: string;
}

export interface LarkWikiNodesPage {
  items?: LarkWikiNode[] | null;
  has_more?: boolean;
  page_token?: string;
}

/** `POST /drive/v1/metas/batch_query` (docs-content.md §5.4). */
export interface LarkMeta {
  doc_token?: string;
  doc_type?: string;
  title?: string;
  owner_id?: string;
  create_time?: string;
  latest_modify_user?: string;
  latest_modify_time?: string;
  url?: string;
}

export interface LarkMetasAnswer {
  metas?: LarkMeta[] | null;
  failed_list?: Array<{ token?: string; code?: number }> | null;
}

/** failed_list codes: type unsupported, no permission, token/type mismatch or missing (deleted). */
export const META_UNSUPPORTED = 970002;
export const META_FORBIDDEN = 970003;
export const META_GONE = 970005;

/** docs/v1/content errors (docs-content.md §5.1). */
export const CONTENT_NO_PERMISSION = 2889902;
export const CONTENT_DELETED = 2889906;
export const CONTENT_NOT_FOUND = 2889914;
export const CONTENT_TOO_LARGE = 2889925;

/** A docx block (docs-content.md §5.3): ids, type, and one payload key named for the type. */
export interface LarkBlock {
  block_id?: string;
  parent_id?: string;
  children?: string[];
  block_type?: number;
  [payload: string]: unknown;
}

export interface LarkBlocksPage {
  items?: LarkBlock[] | null;
  has_more?: boolean;
  page_token?: string;
}

/** Export task result (docs-wiki.md §4). job_status 0 = done; other values: in progress or failed. */
export interface LarkExportResult {
  file_extension?: string;
  type?: string;
  file_name?: string;
  file_token?: string;
  file_size?: number;
  job_error_msg?: string;
  job_status?: number;
}
