import { SyncError } from '../../sync/sync-errors.js';
import { identityUserOf } from '../../sync/identity.js';
import type { DocsSource } from './config.js';

/** How a source is named in messages: its kind and id, as the user configured it. */
export function describeSource(s: DocsSource): string {
  switch (s.kind) {
    case 'space':
      return `wiki space ${s.spaceId}`;
    case 'node':
      return `wiki page ${s.nodeToken}`;
    case 'folder':
      return `Drive folder ${s.folderToken}`;
    case 'doc':
      return `document ${s.token}`;
  }
}

/** What to do so that the reader (the app, or the signed-in user) may read a source or document. */
export function accessHint(what: 'space' | 'node' | 'folder' | 'doc', config: unknown): string {
  const user = identityUserOf(config);
  if (user) return `share it with the user ${user} (the connector reads as that user), or read as the app`;
  switch (what) {
    case 'space':
      return 'add the app to this wiki space as a member (wiki space settings → Members; 知识库设置 → 成员)';
    case 'node':
      return 'add the app to the wiki space holding this page as a member (wiki space settings → Members; 知识库设置 → 成员)';
    case 'folder':
      return 'share this folder with the app: add it as a collaborator (the folder\'s Share menu, or "..." → More → Add document app / 添加文档应用)';
    case 'doc':
      return 'add the app to this document (its "..." menu → More → Add document app / 添加文档应用)';
  }
}

/** Item errors recorded per run; later ones are counted in the log only. */
export const MAX_ITEM_ERRORS = 50;

/** Lark codes for "no such thing" in the Drive, wiki and docs families (docs-wiki.md §1, §2; docs-content.md §5). */
export const GONE_CODES: ReadonlySet<number> = new Set([1061003, 1061007, 131005, 2889906, 2889914, 1770002, 1770003]);

/** A SyncError whose message names the source or document and says what to do ("gone" codes read as not_found). */
export function explain(err: unknown, where: string, what: 'space' | 'node' | 'folder' | 'doc', config: unknown): unknown {
  if (!(err instanceof SyncError)) return err;
  const errorClass = err.larkCode !== undefined && GONE_CODES.has(err.larkCode) ? 'not_found' : err.errorClass;
  const hint =
    errorClass === 'permission_denied'
      ? `; ${accessHint(what, config)}`
      : errorClass === 'not_found'
        ? '; it no longer exists or the id is wrong: fix or remove this source'
        : '';
  return new SyncError(errorClass, `${where}: ${err.message}${hint}`, err.larkCode);
}
