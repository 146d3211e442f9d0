import { seededRandom } from '../support.js';
import { rendered, type DocSize, type DocSpec, type Rendered } from './content.js';
import type { DocsRefs } from './seed.js';

/**
 * One tenant's Drive, wiki and documents as the simulator keeps them (../shared/lark/docs-wiki.md,
 * docs-content.md): folders and the objects in them, wiki spaces and their node trees, who may see
 * what, the edits tests make, export tasks, and a log of every docs API call. No HTTP here.
 *
 * Access model. A principal is an app (`app:<appId>`, or `app:*` = any app, used by generated
 * data) or a user (their open_id). The app sees a Drive object when it or a folder above it is
 * owned by or shared with it ("add document app"); a wiki node when it is a member of the space
 * and the node (or a node above it) is not hidden from it. A user token sees the same way, as
 * that user (owner or shared). Root listings show the caller's own root folder ("My Space").
 *
 * Times are whole seconds (corrections.md); an edit moves the edit time strictly forward, so two
 * edits in one second still differ.
 */

export type DriveType = 'folder' | 'doc' | 'docx' | 'sheet' | 'bitable' | 'mindnote' | 'file' | 'shortcut';
/** What a wiki node or a metas query can point at. */
export type ObjType = 'doc' | 'docx' | 'sheet' | 'bitable' | 'mindnote' | 'file';
export type DownloadExt = 'pdf' | 'docx' | 'xlsx';

/** Matches every app: the principal generated data is shared with. */
export const ANY_APP = 'app:*';
export const appPrincipal = (appId: string) => `app:${appId}`;

/** Docs API names, as counted and as rate-limited. */
export type DocsApi =
  | 'drive.files.list'
  | 'drive.metas.batch_query'
  | 'drive.files.download'
  | 'drive.export.create'
  | 'drive.export.get'
  | 'drive.export.download'
  | 'wiki.spaces.list'
  | 'wiki.nodes.list'
  | 'wiki.get_node'
  | 'docs.content'
  | 'docx.document.get'
  | 'docx.raw_content'
  | 'docx.blocks'
  | 'docx.block.get'
  | 'docx.block.children';

export const DOCS_APIS: readonly DocsApi[] = [
  'drive.files.list',
  'drive.metas.batch_query',
  'drive.files.download',
  'drive.export.create',
  'drive.export.get',
  'drive.export.download',
  'wiki.spaces.list',
  'wiki.nodes.list',
  'wiki.get_node',
  'docs.content',
  'docx.document.get',
  'docx.raw_content',
  'docx.blocks',
  'docx.block.get',
  'docx.block.children',
];

/**
 * The calls that read a document's body: Markdown, raw text, blocks, file downloads and exports.
 * Not `docx.document.get` (title and revision only), listings, get_node or metas.
 */
export const DOCS_CONTENT_APIS: readonly DocsApi[] = [
  'docs.content',
  'docx.raw_content',
  'docx.blocks',
  'docx.block.get',
  'docx.block.children',
  'drive.files.download',
  'drive.export.create',
  'drive.export.get',
  'drive.export.download',
];

/** The docx read family with Lark's 5/s per app (docs-wiki.md §3, docs-content.md §5). */
export const DOCS_FIVE_PER_SECOND: readonly DocsApi[] = ['docs.content', 'docx.document.get', 'docx.raw_content', 'docx.blocks', 'docx.block.get', 'docx.block.children'];

export interface DocsCall {
  api: DocsApi;
  tenantKey: string;
  /** `app:<appId>` or the user's open_id. */
  principal: string;
  /** The document, folder, node, space or ticket the call named, when it named one. */
  target: string | undefined;
  /** The answer (filled in when it is sent). */
  status: number | undefined;
  code: number | undefined;
  at: number;
}

export interface SimDocObject {
  token: string;
  type: DriveType;
  title: string;
  /** open_id, or an app principal for objects the app created. */
  owner: string;
  /** seconds */
  created: number;
  /** seconds */
  edited: number;
  editedBy: string;
  /** docx revision_id (starts at 1); other kinds count their edits the same way. */
  revision: number;
  /** The Drive folder holding it (absent for wiki-hosted objects and root folders). */
  folder?: string;
  /** The wiki node hosting it. */
  node?: string;
  /** Principals it is shared with (ANY_APP = every app). */
  members: Set<string>;
  trashed: boolean;
  /** Folders: their items, in insertion order. */
  children?: string[];
  /** Root folders: whose "My Space" this is. */
  rootOf?: string;
  /** doc / docx: the content of the current revision. */
  spec?: DocSpec;
  /** doc / docx: earlier revisions' content, kept for `document_revision_id`. */
  history?: Map<number, DocSpec>;
  /** file: what the uploaded file is. */
  file?: { ext: DownloadExt; seed: string; lines: number };
  /** shortcut: what it points at. */
  shortcut?: { targetType: DriveType; targetToken: string };
  /** sheet: sheet ids; bitable: table ids (the `sub_id` of a CSV export). */
  subIds?: string[];
}

export interface SimSpace {
  space_id: string;
  name: string;
  description: string;
  space_type: 'team' | 'person';
  visibility: 'public' | 'private';
  open_sharing: 'open' | 'closed';
  members: Set<string>;
  /** Top-level node tokens, in order. */
  top: string[];
}

export interface SimNode {
  space: string;
  token: string;
  /** '' for top-level nodes */
  parent: string;
  /** The object's token (for a shortcut: the target's). */
  obj: string;
  /** Shortcuts: the node it points at, and that node's space. */
  origin?: { node: string; space: string };
  /** Shortcuts carry their own title; origin nodes show their object's. */
  title?: string;
  /** seconds */
  created: number;
  creator: string;
  children: string[];
  /** Principals this node (and what is below it) is hidden from: permission filtering in listings. */
  hiddenFrom: Set<string>;
  trashed: boolean;
}

export type Placement = { folder: string } | { space: string; parent?: string } | { root: string };

export interface NewDocument {
  type?: Exclude<DriveType, 'shortcut'>;
  title?: string;
  in: Placement;
  /** Default: the folder's or root's owner, or the space's first user member. */
  owner?: string;
  /** doc/docx body paragraphs (default: a generated body). */
  paragraphs?: string[];
  size?: DocSize;
  /** file: what kind (default pdf). */
  ext?: DownloadExt;
  sharedWith?: string[];
}

export interface DocEdit {
  /** A paragraph appended to the body (default: a generated one naming the revision). */
  append?: string;
  /** Replaces the whole body with these paragraphs. */
  replace?: string[];
  title?: string;
  /** The editor's open_id (default: the owner). */
  by?: string;
}

export interface SimExport {
  ticket: string;
  tenantKey: string;
  principal: string;
  token: string;
  type: 'doc' | 'docx' | 'sheet' | 'bitable';
  ext: 'docx' | 'pdf' | 'xlsx' | 'csv' | 'base';
  subId: string | undefined;
  onlySchema: boolean;
  polls: number;
  state: 'running' | 'done' | 'failed';
  error: string;
  /** What the source said when the task was created. */
  title: string;
  revision: number;
  spec: DocSpec | undefined;
  fileToken: string | undefined;
  fileName: string;
  bytes: Buffer | undefined;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export function tokenOf(seed: string, length = 22): string {
  const rnd = seededRandom(seed);
  let out = '';
  for (let i = 0; i < length; i += 1) out += ALNUM[Math.floor(rnd() * ALNUM.length)] ?? 'A';
  return out;
}

export const PREFIX: Record<DriveType, string> = {
  folder: 'fldcn',
  doc: 'doccn',
  docx: 'doxcn',
  sheet: 'shtcn',
  bitable: 'bascn',
  mindnote: 'bmncn',
  file: 'boxcn',
  shortcut: 'shccn',
};

/**
 * A change of a Drive object, as the file change events report it (events/feed.ts): an edit of
 * the content and/or the title, a move to the trash, a permanent deletion (of the object and what
 * was below it). `by`: the principal who did it.
 */
export type DocChange =
  | { kind: 'edited'; obj: SimDocObject; content: boolean; title: boolean; by: string }
  | { kind: 'trashed'; obj: SimDocObject; by: string }
  | { kind: 'deleted'; objs: SimDocObject[]; by: string };

let storeIds = 0;

export type Access = 'ok' | 'forbidden' | 'trashed' | 'missing';

export class DocsTenant {
  readonly objects = new Map<string, SimDocObject>();
  readonly spaces = new Map<string, SimSpace>();
  readonly nodes = new Map<string, SimNode>();
  readonly exports = new Map<string, SimExport>();
  /** export result file token -> ticket */
  readonly exportFiles = new Map<string, string>();
  /** Every docs API call of this tenant that carried a valid token, oldest first. */
  readonly calls: DocsCall[] = [];
  /** Principal -> root folder token. */
  private readonly roots = new Map<string, string>();
  private readonly uid = (storeIds += 1);
  private minted = 0;
  private exportFailures = 0;
  /** Polls an export task answers "in progress" before it is done (0 = done at the first poll). */
  exportPolls = 1;
  /** Tokens and ids of the generated data (set by seed.ts). */
  refs!: DocsRefs;
  /** Told of edits, renames, trashing and deletions (SimData turns them into Drive file events). */
  onChange: ((change: DocChange) => void) | undefined = undefined;
  /**
   * Who may manage an object (principals: `app:<appId>`, ANY_APP, open ids), which the Drive file
   * subscribe call needs (change-events.md §3: else 1069603). Absent = whoever may read it (the
   * tolerant default; the notes tie it to "add document app" / Share with manage rights).
   */
  private readonly managerOverrides = new Map<string, Set<string>>();

  constructor(
    readonly tenantKey: string,
    readonly seed: string,
    private readonly clock: () => number,
  ) {}

  /** Now, in whole seconds. */
  nowSec(): number {
    return Math.floor(this.clock() / 1000);
  }

  /** A fresh token of a kind, deterministic per tenant seed and call order. */
  mint(type: DriveType | 'node' | 'file'): string {
    this.minted += 1;
    const prefix = type === 'node' ? 'wikcn' : type === 'file' ? 'boxcn' : PREFIX[type];
    return `${prefix}${tokenOf(`${this.seed}:mint:${type}:${this.minted}`)}`;
  }

  // ---------------------------------------------------------------- building (seed.ts and hooks)

  /** The root folder ("My Space") of a principal, created on first use. */
  rootOf(principal: string): SimDocObject {
    const key = principal.startsWith('app:') ? ANY_APP : principal;
    let token = this.roots.get(key);
    if (!token) {
      token = `${PREFIX.folder}${tokenOf(`${this.seed}:root:${key}`)}`;
      this.roots.set(key, token);
      this.objects.set(token, {
        token,
        type: 'folder',
        title: key === ANY_APP ? 'App space' : 'My Space',
        owner: key,
        created: this.nowSec(),
        edited: this.nowSec(),
        editedBy: key,
        revision: 1,
        members: new Set(),
        trashed: false,
        children: [],
        rootOf: key,
      });
    }
    return this.objects.get(token)!;
  }

  /** Adds an object to a folder (low level: seed.ts and addDocument). */
  put(obj: SimDocObject, folder: string): SimDocObject {
    const parent = this.objects.get(folder);
    if (parent?.type !== 'folder') throw new Error(`simulator: no folder ${folder}`);
    obj.folder = folder;
    (parent.children ??= []).push(obj.token);
    this.objects.set(obj.token, obj);
    return obj;
  }

  addSpace(space: Omit<SimSpace, 'top'>): SimSpace {
    const s: SimSpace = { ...space, top: [] };
    this.spaces.set(s.space_id, s);
    return s;
  }

  /** Adds a node for an object (low level). The object is stored too unless it is a shortcut's target. */
  putNode(node: SimNode, obj: SimDocObject | undefined): SimNode {
    const space = this.spaces.get(node.space);
    if (!space) throw new Error(`simulator: no wiki space ${node.space}`);
    if (node.parent) {
      const parent = this.nodes.get(node.parent);
      if (!parent || parent.space !== node.space) throw new Error(`simulator: no node ${node.parent} in space ${node.space}`);
      parent.children.push(node.token);
    } else {
      space.top.push(node.token);
    }
    this.nodes.set(node.token, node);
    if (obj) {
      obj.node = node.token;
      delete obj.folder;
      this.objects.set(obj.token, obj);
    }
    return node;
  }

  // ---------------------------------------------------------------- lookups

  object(token: string): SimDocObject | undefined {
    return this.objects.get(token);
  }

  node(token: string): SimNode | undefined {
    return this.nodes.get(token);
  }

  space(id: string): SimSpace | undefined {
    return this.spaces.get(id);
  }

  /** The object behind a token that names an object or a wiki node. */
  resolve(token: string): SimDocObject | undefined {
    return this.objects.get(token) ?? this.objectOfNode(this.nodes.get(token));
  }

  objectOfNode(node: SimNode | undefined): SimDocObject | undefined {
    return node ? this.objects.get(node.obj) : undefined;
  }

  /** The object type a node shows (a shortcut shows its target's). */
  objTypeOf(node: SimNode): ObjType {
    return (this.objects.get(node.obj)?.type ?? 'docx') as ObjType;
  }

  titleOf(node: SimNode): string {
    return node.title ?? this.objects.get(node.obj)?.title ?? '';
  }

  /** The live children of a node or of a space's top (trashed ones are gone from the tree). */
  childrenOf(spaceId: string, parent: string): string[] {
    const list = parent ? this.nodes.get(parent)?.children : this.spaces.get(spaceId)?.top;
    return (list ?? []).filter((t) => this.nodes.get(t)?.trashed === false);
  }

  // ---------------------------------------------------------------- access

  private static grants(set: Set<string>, p: string): boolean {
    return set.has(p) || (p.startsWith('app:') && set.has(ANY_APP));
  }

  private static owns(owner: string, p: string): boolean {
    return owner === p || (owner === ANY_APP && p.startsWith('app:'));
  }

  /** Folders from the object up to its root (the object first). */
  private chain(obj: SimDocObject): SimDocObject[] {
    const out: SimDocObject[] = [];
    let cur: SimDocObject | undefined = obj;
    for (let guard = 0; cur && guard < 1000; guard += 1) {
      out.push(cur);
      cur = cur.folder ? this.objects.get(cur.folder) : undefined;
    }
    return out;
  }

  private nodeChain(node: SimNode): SimNode[] {
    const out: SimNode[] = [];
    let cur: SimNode | undefined = node;
    for (let guard = 0; cur && guard < 1000; guard += 1) {
      out.push(cur);
      cur = cur.parent ? this.nodes.get(cur.parent) : undefined;
    }
    return out;
  }

  nodeAccess(node: SimNode | undefined, p: string): Access {
    if (!node) return 'missing';
    const space = this.spaces.get(node.space);
    if (!space) return 'missing';
    const chain = this.nodeChain(node);
    if (chain.some((n) => n.trashed)) return 'trashed';
    if (!DocsTenant.grants(space.members, p)) return 'forbidden';
    if (chain.some((n) => DocsTenant.grants(n.hiddenFrom, p))) return 'forbidden';
    return 'ok';
  }

  /** Whether `p` may read the object (and whether it is still there). */
  access(obj: SimDocObject | undefined, p: string): Access {
    if (!obj) return 'missing';
    if (obj.node) return this.nodeAccess(this.nodes.get(obj.node), p);
    const chain = this.chain(obj);
    if (chain.some((o) => o.trashed)) return 'trashed';
    return chain.some((o) => DocsTenant.owns(o.owner, p) || DocsTenant.grants(o.members, p)) ? 'ok' : 'forbidden';
  }

  spaceVisible(space: SimSpace, p: string): boolean {
    return DocsTenant.grants(space.members, p);
  }

  // ---------------------------------------------------------------- content

  /** The content of a revision of a doc/docx (the current one by default), or undefined for other kinds. */
  specOf(obj: SimDocObject, revision?: number): DocSpec | undefined {
    if (!obj.spec) return undefined;
    if (revision === undefined || revision === obj.revision) return obj.spec;
    return obj.history?.get(revision);
  }

  /** Expanded blocks (cached process-wide, by document revision). */
  render(obj: SimDocObject, spec: DocSpec): Rendered {
    return rendered(`${this.uid}:${obj.token}:${spec.revision}`, spec);
  }

  // ---------------------------------------------------------------- test hooks

  private placeOwner(to: Placement): string {
    if ('folder' in to) return this.objects.get(to.folder)?.owner ?? ANY_APP;
    if ('root' in to) return to.root;
    const members = [...(this.spaces.get(to.space)?.members ?? [])];
    return members.find((m) => !m.startsWith('app:')) ?? ANY_APP;
  }

  /** Builds a new object (not yet placed). */
  newObject(type: Exclude<DriveType, 'shortcut'>, title: string, owner: string, opts: { paragraphs?: string[]; size?: DocSize; ext?: DownloadExt; people?: string[]; at?: number } = {}): SimDocObject {
    const token = this.mint(type);
    const at = opts.at ?? this.nowSec();
    const obj: SimDocObject = { token, type, title, owner, created: at, edited: at, editedBy: owner, revision: 1, members: new Set(), trashed: false };
    if (type === 'folder') obj.children = [];
    if (type === 'doc' || type === 'docx') {
      obj.spec = {
        documentId: token,
        title,
        seed: `${this.seed}:${token}`,
        size: opts.size ?? 'normal',
        appended: [],
        ...(opts.paragraphs ? { replaced: [...opts.paragraphs] } : {}),
        revision: 1,
        people: opts.people ?? (owner.startsWith('app:') ? [] : [owner]),
      };
    }
    if (type === 'file') obj.file = { ext: opts.ext ?? 'pdf', seed: `${this.seed}:${token}`, lines: 40 };
    if (type === 'sheet') obj.subIds = [tokenOf(`${token}:s1`, 6), tokenOf(`${token}:s2`, 6)];
    if (type === 'bitable') obj.subIds = [`tbl${tokenOf(`${token}:t1`, 13)}`];
    return obj;
  }

  /** Places an object: in a folder, a principal's root, or a wiki space (a new node). */
  place(obj: SimDocObject, to: Placement, creator = obj.owner): SimDocObject {
    if ('space' in to) {
      this.putNode({ space: to.space, token: this.mint('node'), parent: to.parent ?? '', obj: obj.token, created: this.nowSec(), creator, children: [], hiddenFrom: new Set(), trashed: false }, obj);
      return obj;
    }
    return this.put(obj, 'folder' in to ? to.folder : this.rootOf(to.root).token);
  }

  /** Adds a document, folder, sheet, Base or file where `in` says; returns it (`node` set when in a wiki). */
  addDocument(d: NewDocument): SimDocObject {
    const type = d.type ?? 'docx';
    const owner = d.owner ?? this.placeOwner(d.in);
    const obj = this.newObject(type, d.title ?? `Untitled ${type} ${this.minted + 1}`, owner, { paragraphs: d.paragraphs, size: d.size, ext: d.ext });
    for (const p of d.sharedWith ?? []) obj.members.add(p);
    return this.place(obj, d.in);
  }

  /** Adds a Drive shortcut to an object into a folder or root. */
  addShortcut(target: string, to: { folder: string } | { root: string }, title?: string): SimDocObject {
    const t = this.mustObject(target);
    const owner = this.placeOwner(to);
    const obj: SimDocObject = {
      token: this.mint('shortcut'),
      type: 'shortcut',
      title: title ?? t.title,
      owner,
      created: this.nowSec(),
      edited: this.nowSec(),
      editedBy: owner,
      revision: 1,
      members: new Set(),
      trashed: false,
      shortcut: { targetType: t.type, targetToken: t.token },
    };
    return this.place(obj, to);
  }

  private mustObject(token: string): SimDocObject {
    const obj = this.resolve(token);
    if (!obj) throw new Error(`simulator: no document, folder or node ${token} in ${this.tenantKey}`);
    return obj;
  }

  private touch(obj: SimDocObject, by: string | undefined): void {
    // Whole seconds, as Lark gives them: two edits within one second share their edit time (only
    // the revision tells them apart). Never earlier than the last one.
    obj.edited = Math.max(this.nowSec(), obj.edited);
    obj.editedBy = by ?? obj.owner;
    obj.revision += 1;
  }

  /**
   * Edits a document (token of the object or of its wiki node): a new revision, a later edit time
   * and editor, and changed content (a paragraph appended, the body replaced, or the title).
   * Other kinds (sheets, Bases, files) get a new revision and edit time (files new bytes).
   */
  edit(token: string, change: DocEdit = {}): SimDocObject {
    const obj = this.mustObject(token);
    this.touch(obj, change.by);
    const titleChanged = change.title !== undefined && change.title !== obj.title;
    // A title-only change (rename) is no content edit; anything else is (appended, replaced, or a
    // new revision of a sheet, Base or file).
    const contentChanged = change.title === undefined || change.append !== undefined || change.replace !== undefined;
    if (change.title !== undefined) obj.title = change.title;
    if (obj.spec) {
      (obj.history ??= new Map()).set(obj.spec.revision, obj.spec);
      const next: DocSpec = { ...obj.spec, title: obj.title, revision: obj.revision };
      if (change.replace) {
        next.replaced = [...change.replace];
        next.appended = [];
      } else if (change.append !== undefined || change.title === undefined) {
        next.appended = [...obj.spec.appended, change.append ?? `Edited in revision ${obj.revision}.`];
      }
      obj.spec = next;
    }
    if (obj.file) obj.file = { ...obj.file, seed: `${obj.file.seed}:r${obj.revision}`, lines: obj.file.lines + 5 };
    if (contentChanged || titleChanged) this.onChange?.({ kind: 'edited', obj, content: contentChanged, title: titleChanged, by: obj.editedBy });
    return obj;
  }

  /** Sets who may manage an object (see managerOverrides); undefined = whoever may read it. */
  setManagers(token: string, principals: Iterable<string> | undefined): void {
    if (principals === undefined) this.managerOverrides.delete(token);
    else this.managerOverrides.set(token, new Set(principals));
  }

  /** Whether `p` owns or may manage the object (the Drive subscribe calls' condition). */
  canManage(obj: SimDocObject, p: string): boolean {
    if (this.access(obj, p) !== 'ok') return false;
    const set = this.managerOverrides.get(obj.token);
    return set === undefined || DocsTenant.owns(obj.owner, p) || DocsTenant.grants(set, p);
  }

  /** Whether `p` is the object's owner (title, trash and delete events go to owners only). */
  isOwner(obj: SimDocObject, p: string): boolean {
    return DocsTenant.owns(obj.owner, p);
  }

  /** Renames a document, folder or wiki node (a shortcut node keeps its own title). */
  rename(token: string, title: string, by?: string): SimDocObject | SimNode {
    const node = this.nodes.get(token);
    if (node?.origin) {
      node.title = title;
      return node;
    }
    return this.edit(token, { title, ...(by ? { by } : {}) });
  }

  /**
   * Moves an object or wiki node: to another folder or root, into a wiki space (from Drive too, as
   * "move docs to wiki" does), or under another node. A node moves with everything below it. The
   * edit time stays: moving is not an edit.
   */
  move(token: string, to: Placement): void {
    const node = this.nodes.get(token) ?? (this.objects.get(token)?.node ? this.nodes.get(this.objects.get(token)!.node!) : undefined);
    if (node) {
      if (!('space' in to)) throw new Error('simulator: a wiki node cannot move back to Drive');
      this.detachNode(node);
      const setSpace = (n: SimNode) => {
        n.space = to.space;
        for (const c of n.children) {
          const child = this.nodes.get(c);
          if (child) setSpace(child);
        }
      };
      setSpace(node);
      node.parent = to.parent ?? '';
      if (node.parent) this.nodes.get(node.parent)!.children.push(node.token);
      else this.spaces.get(to.space)!.top.push(node.token);
      return;
    }
    const obj = this.mustObject(token);
    this.detachFromFolder(obj);
    this.place(obj, to);
  }

  private detachFromFolder(obj: SimDocObject): void {
    const parent = obj.folder ? this.objects.get(obj.folder) : undefined;
    if (parent?.children) parent.children = parent.children.filter((t) => t !== obj.token);
    delete obj.folder;
  }

  private detachNode(node: SimNode): void {
    if (node.parent) {
      const p = this.nodes.get(node.parent);
      if (p) p.children = p.children.filter((t) => t !== node.token);
    } else {
      const s = this.spaces.get(node.space);
      if (s) s.top = s.top.filter((t) => t !== node.token);
    }
  }

  /**
   * Deletes an object, folder or wiki node: to the trash (listings drop it and what is below it,
   * reads answer the "deleted" codes; restore() brings it back), or with `permanent` for good
   * (everything below goes too; reads answer "not found").
   */
  delete(token: string, opts: { permanent?: boolean; by?: string } = {}): void {
    const node = this.nodes.get(token) ?? (this.objects.get(token)?.node ? this.nodes.get(this.objects.get(token)!.node!) : undefined);
    const dropped: SimDocObject[] = [];
    if (node) {
      if (!opts.permanent) {
        node.trashed = true;
        const obj = node.origin ? undefined : this.objects.get(node.obj);
        if (obj) this.onChange?.({ kind: 'trashed', obj, by: opts.by ?? obj.owner });
        return;
      }
      const owner = this.objects.get(node.obj)?.owner ?? ANY_APP;
      this.detachNode(node);
      const drop = (n: SimNode) => {
        this.nodes.delete(n.token);
        const obj = n.origin ? undefined : this.objects.get(n.obj);
        if (obj) dropped.push(obj);
        if (!n.origin) this.objects.delete(n.obj);
        for (const c of n.children) {
          const child = this.nodes.get(c);
          if (child) drop(child);
        }
      };
      drop(node);
      if (dropped.length > 0) this.onChange?.({ kind: 'deleted', objs: dropped, by: opts.by ?? owner });
      return;
    }
    const obj = this.mustObject(token);
    if (!opts.permanent) {
      obj.trashed = true;
      // Only the object itself: what is below a trashed folder is not trashed itself (restore()
      // brings it back); whether Lark sends events for it is not in the notes (unconfirmed).
      this.onChange?.({ kind: 'trashed', obj, by: opts.by ?? obj.owner });
      return;
    }
    this.detachFromFolder(obj);
    const drop = (o: SimDocObject) => {
      dropped.push(o);
      this.objects.delete(o.token);
      for (const c of o.children ?? []) {
        const child = this.objects.get(c);
        if (child) drop(child);
      }
    };
    drop(obj);
    // Everything below goes for good as well: each subscribed object gets its deleted event.
    this.onChange?.({ kind: 'deleted', objs: dropped, by: opts.by ?? obj.owner });
  }

  /** Takes an object or node out of the trash. */
  restore(token: string): void {
    const node = this.nodes.get(token);
    if (node) node.trashed = false;
    const obj = this.objects.get(token);
    if (obj) obj.trashed = false;
  }

  /** Shares an object or folder with a principal (`app:*`, `app:<appId>` or an open_id). */
  share(token: string, principal: string): void {
    this.mustObject(token).members.add(principal);
  }

  /** Takes a share away (also `app:*`). */
  unshare(token: string, principal: string): void {
    this.mustObject(token).members.delete(principal);
  }

  addSpaceMember(spaceId: string, principal: string): void {
    this.spaces.get(spaceId)?.members.add(principal);
  }

  removeSpaceMember(spaceId: string, principal: string): void {
    this.spaces.get(spaceId)?.members.delete(principal);
  }

  /** Hides a node and what is below it from a principal (default: every app): listings filter it out after paging. */
  hideNode(nodeToken: string, principal = ANY_APP): void {
    const node = this.nodes.get(nodeToken);
    if (!node) throw new Error(`simulator: no wiki node ${nodeToken}`);
    node.hiddenFrom.add(principal);
  }

  unhideNode(nodeToken: string, principal = ANY_APP): void {
    this.nodes.get(nodeToken)?.hiddenFrom.delete(principal);
  }

  /** The next `count` export tasks fail (job_status 3 with a job_error_msg) instead of finishing. */
  failNextExports(count = 1): void {
    this.exportFailures += count;
  }

  takeExportFailure(): boolean {
    if (this.exportFailures <= 0) return false;
    this.exportFailures -= 1;
    return true;
  }

  // ---------------------------------------------------------------- counters

  record(api: DocsApi, principal: string, target: string | undefined): DocsCall {
    const call: DocsCall = { api, tenantKey: this.tenantKey, principal, target, status: undefined, code: undefined, at: Date.now() };
    this.calls.push(call);
    return call;
  }

  /**
   * Calls of one API, several, or every docs API (`undefined`); optionally only those naming
   * `target`, or answered with `code` (0 = success).
   */
  count(api?: DocsApi | readonly DocsApi[], filter: { target?: string; code?: number; principal?: string } = {}): number {
    const apis = api === undefined ? undefined : typeof api === 'string' ? [api] : api;
    return this.calls.filter(
      (c) =>
        (!apis || apis.includes(c.api)) &&
        (filter.target === undefined || c.target === filter.target) &&
        (filter.code === undefined || c.code === filter.code) &&
        (filter.principal === undefined || c.principal === filter.principal),
    ).length;
  }

  resetCalls(): void {
    this.calls.length = 0;
  }
}
