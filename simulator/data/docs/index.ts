/**
 * Drive, wiki and docx documents for the simulator (../shared/lark/docs-wiki.md, docs-content.md,
 * corrections.md):
 * - store.ts    DocsTenant: folders, objects, wiki spaces and nodes, access, edits, exports, call log;
 * - seed.ts     generateDocs: a tenant's generated Drive and wiki from a seed and a shape (refs);
 * - content.ts  a document's blocks, Markdown and raw text, expanded lazily and cached by size;
 * - files.ts    bytes of uploaded files and export results (ZIP-based Office files, PDF, CSV);
 * - routes.ts   the HTTP routes, limits, faults.
 */
export {
  ANY_APP,
  DOCS_APIS,
  DOCS_CONTENT_APIS,
  DOCS_FIVE_PER_SECOND,
  DocsTenant,
  appPrincipal,
  type Access,
  type DocChange,
  type DocEdit,
  type DocsApi,
  type DocsCall,
  type DownloadExt,
  type DriveType,
  type NewDocument,
  type ObjType,
  type Placement,
  type SimDocObject,
  type SimExport,
  type SimNode,
  type SimSpace,
} from './store.js';
export { DOCS_GENERATED_BEFORE_SEC, bigWikiDocsShape, defaultDocsSeed, defaultDocsShape, generateDocs, type DocsRefs, type DocsShape } from './seed.js';
export { BlockType, EMBED_HEADINGS, buildBlocks, renderMarkdown, renderRaw, type DocSize, type DocSpec, type SimBlock, type TextElement } from './content.js';
export { CONTENT_TYPES, csvBytes, docxBytes, pdfBytes, xlsxBytes, zipStored, type FileExt } from './files.js';
export { defaultDocsLimits, fileBytes, registerDocsRoutes, type DocsFaults, type DocsOptions, type DocsRouteDeps } from './routes.js';
