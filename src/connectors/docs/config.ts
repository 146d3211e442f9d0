import { Type, type Static } from '@sinclair/typebox';
import { FormatRegistry } from '@sinclair/typebox';
import { RegExpValidator } from '@eslint-community/regexpp';

// Makes the `errorMessage`s below the messages users see.
import '../../sync/config-errors.js';
import { literalUnion } from '../../sync/config-errors.js';
import { Identity } from '../../sync/identity.js';

/**
 * The docs module's settings: where to read (wiki spaces, wiki nodes, Drive folders, single
 * documents, by id or by the URL copied from the browser), which documents to keep (kinds, and
 * regular expressions on their path), whose token to read with, and which knowledge-base sinks
 * this connector feeds (names only; the sinks are configured elsewhere).
 */

/** Lark brand hosts: `<tenant>.feishu.cn` (Feishu) and `<tenant>.larksuite.com` (Lark). */
const HOST = String.raw`([A-Za-z0-9-]+\.)+(feishu\.cn|larksuite\.com)`;
const TOKEN = '[A-Za-z0-9]{5,100}';
/**
 * What a copied URL may point at (docs-wiki.md §0: `/docx/`, `/sheets/`, `/base/`, `/file/`,
 * `/wiki/`, `/drive/folder/`). A wiki space's home (`/wiki/space/<space_id>`) and the legacy doc
 * path (`/docs/<token>`) are not in the notes (unconfirmed) and are accepted as well.
 */
export const DOCS_URL_PATTERN = String.raw`^https://${HOST}/(wiki/space/[0-9]{1,30}|wiki/${TOKEN}|drive/folder/${TOKEN}|(docx|docs|doc|sheets|base|file)/${TOKEN})/?([?#].*)?$`;

/** The kinds of documents the module can take (docs-wiki.md §1, obj_type of §2.2). */
export const DOC_TYPES = ['docx', 'doc', 'sheet', 'bitable', 'file'] as const;
export type DocType = (typeof DOC_TYPES)[number];

const validator = new RegExpValidator({ ecmaVersion: 2025 });

/** Where a pattern is invalid (a character index into it) and why, or undefined when it is valid. */
export function patternError(source: string): { index: number; reason: string } | undefined {
  try {
    validator.validatePattern(source, undefined, undefined, { unicode: true });
    new RegExp(source, 'u');
    return undefined;
  } catch (err) {
    const e = err as { index?: number; message?: string };
    // "Invalid regular expression: /a(b/u: Unterminated group" -> "Unterminated group"
    const reason = (e.message ?? 'invalid').replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
    return { index: typeof e.index === 'number' ? e.index : 0, reason };
  }
}

const PATTERN_FORMAT = 'larksync-docs-regex';
if (!FormatRegistry.Has(PATTERN_FORMAT)) FormatRegistry.Set(PATTERN_FORMAT, (v) => patternError(v) === undefined);

/** A JavaScript regular expression (Unicode mode); an invalid one says where and why. */
const Pattern = Type.String({
  maxLength: 1000,
  format: PATTERN_FORMAT,
  description: 'A JavaScript regular expression (Unicode mode), matched against a document path',
  errorMessage: (error: { value: unknown }) => {
    if (typeof error.value !== 'string') return 'must be a regular expression (a string)';
    if (error.value.length > 1000) return 'a regular expression may be at most 1000 characters';
    const bad = patternError(error.value);
    return bad
      ? `invalid regular expression at position ${bad.index} (0-based) of ${JSON.stringify(error.value)}: ${bad.reason}`
      : 'invalid regular expression';
  },
});

const Patterns = (what: string) =>
  Type.Optional(
    Type.Array(Pattern, {
      maxItems: 50,
      description: what,
      errorMessage: 'must be a list of at most 50 regular expressions (strings)',
    }),
  );

const DocsUrl = Type.String({
  pattern: DOCS_URL_PATTERN,
  maxLength: 2000,
  errorMessage:
    'url must be a wiki space, wiki page, Drive folder or document URL as copied from the browser, like ' +
    'https://<tenant>.feishu.cn/wiki/<node_token>, .../drive/folder/<folder_token> or .../docx/<document_id> (.larksuite.com works too)',
});

const Source = Type.Intersect([
  Type.Object(
    {
      wikiSpaceId: Type.Optional(
        Type.String({ pattern: '^[0-9]{1,30}$', errorMessage: 'wikiSpaceId must be a wiki space_id (digits, from the space URL /wiki/space/<space_id>)' }),
      ),
      folderToken: Type.Optional(
        Type.String({ pattern: `^${TOKEN}$`, errorMessage: 'folderToken must be a Drive folder token (the letters and digits after /drive/folder/)' }),
      ),
      url: Type.Optional(DocsUrl),
    },
    { additionalProperties: false, errorMessage: 'a source is an object with exactly one of wikiSpaceId, folderToken or url' },
  ),
  Type.Union(
    [
      Type.Object({ wikiSpaceId: Type.String(), folderToken: Type.Optional(Type.Never()), url: Type.Optional(Type.Never()) }),
      Type.Object({ folderToken: Type.String(), wikiSpaceId: Type.Optional(Type.Never()), url: Type.Optional(Type.Never()) }),
      Type.Object({ url: Type.String(), wikiSpaceId: Type.Optional(Type.Never()), folderToken: Type.Optional(Type.Never()) }),
    ],
    { errorMessage: 'each source needs exactly one of wikiSpaceId, folderToken or url' },
  ),
]);

export const DocsConfig = Type.Object(
  {
    sources: Type.Array(Source, {
      minItems: 1,
      maxItems: 100,
      description: 'Wiki spaces, wiki pages (with everything below), Drive folders (with everything below) and single documents',
      errorMessage: 'sources must list 1 to 100 sources, each { wikiSpaceId }, { folderToken } or { url }',
    }),
    include: Patterns('Keep only documents whose path ("Space or folder / parent titles / title") matches one of these'),
    exclude: Patterns('Leave out documents whose path matches one of these (exclude wins over include)'),
    types: Type.Array(literalUnion(DOC_TYPES), {
      minItems: 1,
      uniqueItems: true,
      default: ['docx', 'file'],
      description: 'Kinds of documents to take: docx, doc (legacy), sheet, bitable, file (uploaded files: metadata only)',
      errorMessage: `types must list one or more of ${DOC_TYPES.map((t) => `"${t}"`).join(', ')}, each once`,
    }),
    identity: Identity,
    treeRefreshMinutes: Type.Integer({
      minimum: 0,
      maximum: 10_080,
      default: 60,
      description:
        'How often a run lists the whole tree of each wiki or folder source (the structure pass); runs in between check the ' +
        'documents already known with one metas call per 200, so new pages, moves and folder renames wait for the next structure ' +
        'pass. 0 lists the tree every run. A full run always lists it.',
      errorMessage: 'treeRefreshMinutes must be a whole number of minutes from 0 to 10080 (a week)',
    }),
    sinks: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), {
      maxItems: 20,
      uniqueItems: true,
      default: [],
      description: 'Names of the knowledge-base sinks this connector feeds',
      errorMessage: 'sinks must be a list of sink names (strings), each once',
    }),
  },
  { additionalProperties: false },
);
export type DocsConfigType = Static<typeof DocsConfig>;
export type DocsSourceEntry = DocsConfigType['sources'][number];

/** A source as the module reads it: its kind, root token and partition (also the `source` column). */
export type DocsSource =
  | { kind: 'space'; spaceId: string; partition: string }
  | { kind: 'node'; nodeToken: string; partition: string }
  | { kind: 'folder'; folderToken: string; partition: string }
  | { kind: 'doc'; token: string; docType: DocType; partition: string };

const URL_DOC_TYPES: Record<string, DocType> = { docx: 'docx', docs: 'doc', doc: 'doc', sheets: 'sheet', base: 'bitable', file: 'file' };

/** Reads a validated source entry; undefined for a URL of no known shape (the schema prevents that). */
export function sourceOf(entry: DocsSourceEntry): DocsSource | undefined {
  if (entry.wikiSpaceId !== undefined) return { kind: 'space', spaceId: entry.wikiSpaceId, partition: `wiki:${entry.wikiSpaceId}` };
  if (entry.folderToken !== undefined) return { kind: 'folder', folderToken: entry.folderToken, partition: `folder:${entry.folderToken}` };
  if (entry.url === undefined || !new RegExp(DOCS_URL_PATTERN).test(entry.url)) return undefined;
  let url: URL;
  try {
    url = new URL(entry.url);
  } catch {
    return undefined;
  }
  const parts = url.pathname.split('/').filter(Boolean);
  if (parts[0] === 'wiki' && parts[1] === 'space' && parts[2]) return { kind: 'space', spaceId: parts[2], partition: `wiki:${parts[2]}` };
  if (parts[0] === 'wiki' && parts[1]) return { kind: 'node', nodeToken: parts[1], partition: `node:${parts[1]}` };
  if (parts[0] === 'drive' && parts[1] === 'folder' && parts[2]) return { kind: 'folder', folderToken: parts[2], partition: `folder:${parts[2]}` };
  const docType = URL_DOC_TYPES[parts[0] ?? ''];
  if (docType && parts[1]) return { kind: 'doc', token: parts[1], docType, partition: `doc:${parts[1]}` };
  return undefined;
}

/** The configured sources, read and without repeats (the same root twice is read once). */
export function sourcesOf(config: DocsConfigType): DocsSource[] {
  const out = new Map<string, DocsSource>();
  for (const entry of config.sources) {
    const s = sourceOf(entry);
    if (s && !out.has(s.partition)) out.set(s.partition, s);
  }
  return [...out.values()];
}

/** The root token of a source (a space has none: its id is not a node token). */
export function rootTokenOf(s: DocsSource): string | undefined {
  return s.kind === 'node' ? s.nodeToken : s.kind === 'folder' ? s.folderToken : s.kind === 'doc' ? s.token : undefined;
}

/** Which documents are in scope: their kind and their path. */
export interface DocsFilter {
  types: ReadonlySet<string>;
  include: RegExp[];
  exclude: RegExp[];
}

export function filterOf(config: DocsConfigType): DocsFilter {
  return {
    types: new Set(config.types ?? ['docx', 'file']),
    include: (config.include ?? []).map((p) => new RegExp(p, 'u')),
    exclude: (config.exclude ?? []).map((p) => new RegExp(p, 'u')),
  };
}

/** Whether a document of this kind and path is in scope; `exclude` wins over `include`. */
export function inScope(filter: DocsFilter, objType: string, path: string): boolean {
  if (!filter.types.has(objType)) return false;
  if (filter.exclude.some((r) => r.test(path))) return false;
  return filter.include.length === 0 || filter.include.some((r) => r.test(path));
}
