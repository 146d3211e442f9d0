import { identityUserOf } from '../../sync/identity.js';
import type { SyncMode } from '../../sync/sync.tables.js';
import type { DocsConfigType, DocsSource } from './config.js';

/**
 * When a run lists a source's whole tree (the structure pass) rather than checking the documents
 * it already knows (the check pass, known-check.ts).
 *
 * Lark has no change signal for a wiki tree (no wiki events, change-events.md §4; no modified time
 * on a space or on a parent when a child is added, moved or deleted, docs-wiki.md §2), and its
 * node listing allows 100 calls a minute: a 2,000-page wiki with 730 parents takes over seven
 * minutes to list. So the tree is listed at most every `treeRefreshMinutes` (default 60), and
 * always when it never was, when asked for (a full run), or when what decides which nodes are kept
 * changed (include, exclude, types, identity: rows out of scope are not stored, so a widened
 * filter needs the listing). Runs in between cost one metas call per 200 known documents. The
 * trade-off: a page added, moved or deleted (and a folder renamed) is seen at the next structure
 * pass; edits and page renames at the next run.
 */
export const DEFAULT_TREE_REFRESH_MINUTES = 60;

/** What the stored nodes were judged under: a change of it makes the next run list every tree. */
export function scopeKeyOf(config: DocsConfigType): string {
  return JSON.stringify({ include: config.include ?? [], exclude: config.exclude ?? [], types: config.types ?? null, user: identityUserOf(config) ?? null });
}

/**
 * The partitions of sources whose tree (or, for a single document, metas) this run reads: all on a full run, with
 * a refresh of 0, or when the scope changed; otherwise those never listed completely, or last
 * listed `treeRefreshMinutes` or more before `now`.
 */
export function structureDue(opts: {
  sources: DocsSource[];
  mode: SyncMode;
  refreshMinutes: number;
  scopeChanged: boolean;
  listedAt: Readonly<Record<string, number>>;
  now: number;
}): string[] {
  const every = opts.refreshMinutes * 60_000;
  return opts.sources
    .filter((s) => {
      if (opts.mode === 'full' || every <= 0 || opts.scopeChanged) return true;
      const at = opts.listedAt[s.partition];
      return at === undefined || opts.now - at >= every || at > opts.now;
    })
    .map((s) => s.partition);
}
