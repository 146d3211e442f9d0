import { defineModule } from '../../sync/sync-module.js';
import { DocsConfig, type DocsConfigType } from './config.js';
import { contentPhase } from './content.phase.js';
import { docsReads, type DocsReads } from './docs-reads.js';
import { docsForm } from './form.js';
import { listingPhase } from './listing.phase.js';
import { DOCS_EVENTS, refreshDocument } from './events.js';
import { DOCS_LIMITS, DOCS_STREAMS } from './streams.js';

export { DOCS_LIMITS, DOCS_STREAMS };

/**
 * Docs, Wiki and Drive documents as Markdown for knowledge bases. The listing phase walks the
 * configured sources into docs_nodes (each node with its path and edit time) at most every
 * `treeRefreshMinutes`, reading the bodies of listed docx while its listing calls wait, and in
 * the runs between checks the known documents through metas (tree-refresh.ts, known-check.ts);
 * the content phase fetches the Markdown of documents that are new or edited since stored and not
 * read yet (docs/v1/content, blocks over 10 MB, export tasks for legacy docs, sheets and Bases),
 * keeps uploaded files as metadata for the sinks to download, and removes rows that went out of
 * scope. A run fetches only what changed; a full run always lists every tree.
 */
export const docsModule = defineModule<DocsConfigType, DocsReads>({
  name: 'docs',
  streams: DOCS_STREAMS,
  limits: DOCS_LIMITS,
  reads: docsReads,
  form: docsForm,
  userScopes: [
    'wiki:wiki:readonly',
    'drive:drive:readonly',
    'drive:drive.metadata:readonly',
    'docs:document.content:read',
    'docx:document:readonly',
  ],
  configSchema: DocsConfig,
  warnings: (config) =>
    (config.types ?? []).some((t) => t === 'doc' || t === 'sheet' || t === 'bitable')
      ? ['legacy docs, sheets and Bases are read through export tasks (slower; the app needs drive:export:readonly or docs:document:export)']
      : [],
  phases: [listingPhase, contentPhase],
  events: DOCS_EVENTS,
  deferred: { refresh: refreshDocument },
});
