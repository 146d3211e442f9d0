import { SyncError } from '../../sync/sync-errors.js';
import type { ItemError } from '../../sync/sync.tables.js';

/** A page of a Lark listing: where the listing goes on, or why it stopped. */
export type PageEnd = { more: true; pageToken: string } | { more: false; complete: boolean };

/**
 * `has_more: true` without a `page_token` is a listing that stopped early (review L5): it is not
 * the end, and nothing after it may be judged deleted.
 */
export function pageEnd(data: { has_more?: boolean; page_token?: string }): PageEnd {
  if (data.has_more && data.page_token) return { more: true, pageToken: data.page_token };
  return { more: false, complete: !data.has_more };
}

/** A department Lark would not list, as recorded on the run (the others go on). */
export function departmentError(id: string, err: SyncError, what: string): ItemError {
  const hint =
    err.errorClass === 'permission_denied'
      ? "add the department to the app's contact scope (admin console, the app's data range), or remove it from departmentIds"
      : err.errorClass === 'not_found' || err.errorClass === 'invalid_config'
        ? 'check the department id and departmentIdType, or remove it from departmentIds'
        : 'Lark kept failing on this department; the next run tries it again';
  return { item: 'department', id, errorClass: err.errorClass, message: `${what}: ${err.message}; ${hint}` };
}
