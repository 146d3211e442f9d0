import { seededRandom } from '../support.js';
import type { DocSize } from './content.js';
import { ANY_APP, DocsTenant, type DownloadExt, type DriveType, type SimDocObject, type SimNode } from './store.js';

/**
 * A tenant's generated Drive and wiki, derived from a seed (default: the tenant key): the same
 * shape and seed give the same tokens, titles, tree and content on every run. The tree is built
 * on first use (a few milliseconds for 2,000 pages); page content is expanded only when read.
 */

export interface DocsShape {
  /** Seed of everything generated (default `docs:<tenantKey>`). */
  seed: string;
  /** People owning the generated documents: the contact directory's `ou_<tenantKey>-1` … `-n`. */
  owners: number;
  /** Pages in the shared wiki space ("Handbook"), the app and owners 1–2 being members. */
  wikiDocuments: number;
  /** Levels of the shared space's tree (1 = top-level nodes only); always reached. */
  wikiDepth: number;
  /** Wiki pages of about 1.5 MB of Markdown. */
  largePages: number;
  /** Wiki pages of more than 10 MB of Markdown (docs/v1/content answers 2889925 for them). */
  oversizePages: number;
  /** Pages of a space the app is not a member of (owner 3 is). */
  privateSpaceDocuments: number;
  /** Folders below the shared "Team drive" folder. */
  teamFolders: number;
  /** Levels of folders below "Team drive"; always reached when teamFolders allows. */
  driveDepth: number;
  /** Documents, sheets, Bases and files spread over "Team drive" and its folders. */
  driveDocuments: number;
  /** Documents in "Team drive/Archive", one flat folder (more than a default page of 100). */
  archiveDocuments: number;
  /** Documents in each owner's own root ("My Space"); the first is shared with the next owner. */
  personalDocuments: number;
}

export const defaultDocsShape: Omit<DocsShape, 'seed'> = {
  owners: 3,
  wikiDocuments: 150,
  wikiDepth: 5,
  largePages: 1,
  oversizePages: 1,
  privateSpaceDocuments: 6,
  teamFolders: 6,
  driveDepth: 3,
  driveDocuments: 40,
  archiveDocuments: 230,
  personalDocuments: 2,
};

/** A 2,000-page wiki nested 5 deep with some large pages: what a knowledge-base benchmark reads. */
export const bigWikiDocsShape: Partial<DocsShape> = { wikiDocuments: 2000, wikiDepth: 5, largePages: 20, oversizePages: 2 };

/** Tokens and ids of the generated data, for tests and benchmarks. */
export interface DocsRefs {
  /** Open ids of the owners (contact directory ids). */
  owners: string[];
  /** The app's own root folder (what a root listing with a tenant token shows). */
  appRoot: string;
  /** Shared with the app; owned by owners[0]. */
  teamFolder: string;
  /** The deepest folder below teamFolder. */
  deepFolder: string;
  /** A flat folder of `archiveDocuments` documents below teamFolder. */
  archiveFolder: string;
  /** Owned by owners[1], shared with owners[2], not with the app. */
  privateFolder: string;
  /** A document in privateFolder. */
  privateDoc: string;
  /** Each owner's own documents (their root), by open id. */
  personal: Record<string, string[]>;
  /** In teamFolder, one of each kind. */
  drive: { docx: string; doc: string; sheet: string; bitable: string; mindnote: string; pdf: string; docxFile: string; xlsxFile: string };
  /** The shared space ("Handbook"): the app and owners[0..1] are members. */
  space: string;
  /** A space the app is not a member of (owners[2] is). */
  privateSpace: string;
  /** A node `wikiDepth` levels down the shared space. */
  deepNode: string;
  /** A normal docx page of the shared space: its node and document. */
  wikiDoc: { node: string; document: string };
  /** Documents of the large and oversize pages (in the shared space). */
  largeDocs: string[];
  oversizeDocs: string[];
  /** Every node of the shared space, in creation order. */
  spaceNodes: string[];
}

/** 2025-01-01T00:00Z: generated objects were created and last edited before this (seconds). */
export const DOCS_GENERATED_BEFORE_SEC = Date.UTC(2025, 0, 1) / 1000;
const DAY = 86_400;

const TOPICS = ['Onboarding', 'Release process', 'On-call guide', 'Design review', 'Quarterly plan', 'Security policy', 'API reference', 'Meeting notes', 'Runbook', 'Retrospective', 'Hiring loop', 'Travel policy', 'Architecture', 'FAQ', 'Glossary'];

type Kind = Exclude<DriveType, 'folder'>;

function pickKind(r: number, mix: Array<[Kind, number]>): Kind {
  let acc = 0;
  for (const [k, p] of mix) {
    acc += p;
    if (r < acc) return k;
  }
  return 'docx';
}

export function generateDocs(tenantKey: string, shape: DocsShape, clock: () => number): DocsTenant {
  const data = new DocsTenant(tenantKey, shape.seed, clock);
  const rnd = seededRandom(`docs:${shape.seed}`);
  const owners = Array.from({ length: Math.max(1, shape.owners) }, (_, i) => `ou_${tenantKey}-${i + 1}`);
  const owner = (i: number) => owners[i % owners.length]!;
  const times = () => {
    const created = DOCS_GENERATED_BEFORE_SEC - 365 * DAY + Math.floor(rnd() * 300 * DAY);
    return { created, edited: created + Math.floor(rnd() * (DOCS_GENERATED_BEFORE_SEC - 1 - created)) };
  };
  let titles = 0;
  const title = (kind: DriveType) => {
    titles += 1;
    const topic = TOPICS[Math.floor(rnd() * TOPICS.length)] ?? 'Notes';
    return kind === 'folder' ? `${topic} folder ${titles}` : `${topic} ${titles}`;
  };
  const make = (kind: Exclude<Kind, 'shortcut'> | 'folder', who: string, opts: { size?: DocSize; ext?: DownloadExt; title?: string } = {}): SimDocObject => {
    const { created, edited } = times();
    const obj = data.newObject(kind, opts.title ?? title(kind), who, { size: opts.size, ext: opts.ext, people: owners, at: created });
    obj.edited = edited;
    obj.editedBy = owner(Math.floor(rnd() * owners.length));
    if (obj.file) {
      obj.title = `${obj.title}.${obj.file.ext}`;
      obj.file.lines = 20 + Math.floor(rnd() * 200);
    }
    if (obj.spec) obj.spec.title = obj.title;
    return obj;
  };
  const fileExt = (): DownloadExt => (['pdf', 'docx', 'xlsx'] as const)[Math.floor(rnd() * 3)] ?? 'pdf';

  // ------------------------------------------------------------ Drive
  const appRoot = data.rootOf(ANY_APP);
  for (let i = 0; i < 3; i += 1) data.put(make('docx', ANY_APP, { title: `App notes ${i + 1}` }), appRoot.token);

  const team = data.put(make('folder', owner(0), { title: 'Team drive' }), data.rootOf(owner(0)).token);
  team.members.add(ANY_APP);
  const fixed = {
    docx: data.put(make('docx', owner(0), { title: 'Team handbook' }), team.token),
    doc: data.put(make('doc', owner(0), { title: 'Legacy notes' }), team.token),
    sheet: data.put(make('sheet', owner(0), { title: 'Budget' }), team.token),
    bitable: data.put(make('bitable', owner(0), { title: 'Tracker' }), team.token),
    mindnote: data.put(make('mindnote', owner(0), { title: 'Brainstorm' }), team.token),
    pdf: data.put(make('file', owner(0), { ext: 'pdf', title: 'Contract' }), team.token),
    docxFile: data.put(make('file', owner(0), { ext: 'docx', title: 'Proposal' }), team.token),
    xlsxFile: data.put(make('file', owner(0), { ext: 'xlsx', title: 'Forecast' }), team.token),
  };
  // The app's root holds a shortcut too: root listings leave shortcuts out (corrections.md).
  data.addShortcut(fixed.docx.token, { folder: appRoot.token }, 'Team handbook (shortcut)');

  const folders: Array<{ token: string; depth: number }> = [{ token: team.token, depth: 0 }];
  for (let i = 0; i < shape.teamFolders; i += 1) {
    const deep = folders.filter((f) => f.depth < shape.driveDepth);
    const parent = i < shape.driveDepth ? folders[i]! : (deep[Math.floor(rnd() * deep.length)] ?? folders[0]!);
    const f = data.put(make('folder', owner(0)), parent.token);
    folders.push({ token: f.token, depth: parent.depth + 1 });
  }
  const deepFolder = folders.reduce((a, b) => (b.depth > a.depth ? b : a));
  const driveMix: Array<[Kind, number]> = [
    ['docx', 0.6],
    ['doc', 0.08],
    ['sheet', 0.08],
    ['bitable', 0.06],
    ['file', 0.12],
    ['mindnote', 0.03],
    ['shortcut', 0.03],
  ];
  const driveObjects: SimDocObject[] = [fixed.docx];
  for (let i = 0; i < shape.driveDocuments; i += 1) {
    const folder = i === 0 ? deepFolder : (folders[Math.floor(rnd() * folders.length)] ?? folders[0]!);
    const kind = i === 0 ? 'docx' : pickKind(rnd(), driveMix);
    if (kind === 'shortcut') {
      const target = driveObjects[Math.floor(rnd() * driveObjects.length)]!;
      data.addShortcut(target.token, { folder: folder.token });
      continue;
    }
    driveObjects.push(data.put(make(kind, owner(Math.floor(rnd() * owners.length)), kind === 'file' ? { ext: fileExt() } : {}), folder.token));
  }
  const archive = data.put(make('folder', owner(0), { title: 'Archive' }), team.token);
  for (let i = 0; i < shape.archiveDocuments; i += 1) data.put(make('docx', owner(i), { title: `Archived note ${i + 1}` }), archive.token);

  const privateFolder = data.put(make('folder', owner(1), { title: 'Private' }), data.rootOf(owner(1)).token);
  privateFolder.members.add(owner(2));
  const privateDoc = data.put(make('docx', owner(1), { title: 'Salary review' }), privateFolder.token);
  for (let i = 0; i < 2; i += 1) data.put(make('docx', owner(1)), privateFolder.token);

  const personal: Record<string, string[]> = {};
  owners.forEach((o, k) => {
    personal[o] = [];
    for (let i = 0; i < shape.personalDocuments; i += 1) {
      const d = data.put(make('docx', o, { title: `Personal note ${k + 1}.${i + 1}` }), data.rootOf(o).token);
      if (i === 0 && owners.length > 1) d.members.add(owner(k + 1));
      personal[o]!.push(d.token);
    }
  });

  // ------------------------------------------------------------ Wiki
  const spaceId = (name: string) => String(7_000_000_000_000_000_000n + BigInt(Math.floor(seededRandom(`${shape.seed}:space:${name}`)() * 1e15)));
  const shared = data.addSpace({
    space_id: spaceId('handbook'),
    name: 'Handbook',
    description: 'How we work',
    space_type: 'team',
    visibility: 'private',
    open_sharing: 'closed',
    members: new Set([ANY_APP, owner(0), owner(1)]),
  });
  const leadership = data.addSpace({
    space_id: spaceId('leadership'),
    name: 'Leadership',
    description: 'Not shared with the app',
    space_type: 'team',
    visibility: 'private',
    open_sharing: 'closed',
    members: new Set([owner(2)]),
  });

  const wikiMix: Array<[Kind, number]> = [
    ['docx', 0.82],
    ['doc', 0.03],
    ['sheet', 0.05],
    ['bitable', 0.03],
    ['file', 0.04],
    ['mindnote', 0.01],
    ['shortcut', 0.02],
  ];
  /** Builds `count` nodes in a space, `depth` levels deep; returns them with their depths. */
  const tree = (spaceIdValue: string, count: number, depth: number, mix: Array<[Kind, number]>) => {
    const made: Array<{ node: SimNode; depth: number; kind: Kind }> = [];
    const parents: number[] = [];
    for (let i = 0; i < count; i += 1) {
      let parentIndex = -1;
      if (i < depth) parentIndex = i - 1;
      else if (rnd() >= 0.04 && parents.length > 0) parentIndex = parents[Math.floor(rnd() * parents.length)]!;
      const parent = parentIndex >= 0 ? made[parentIndex] : undefined;
      const kind: Kind = i < depth ? 'docx' : pickKind(rnd(), mix);
      const who = owner(Math.floor(rnd() * Math.min(2, owners.length)));
      let node: SimNode;
      if (kind === 'shortcut') {
        const origins = made.filter((m) => !m.node.origin);
        const origin = origins[Math.floor(rnd() * origins.length)];
        if (!origin) continue;
        node = data.putNode(
          {
            space: spaceIdValue,
            token: data.mint('node'),
            parent: parent?.node.token ?? '',
            obj: origin.node.obj,
            origin: { node: origin.node.token, space: spaceIdValue },
            title: `Shortcut to ${data.titleOf(origin.node)}`,
            created: times().created,
            creator: who,
            children: [],
            hiddenFrom: new Set(),
            trashed: false,
          },
          undefined,
        );
      } else {
        const obj = make(kind, who, kind === 'file' ? { ext: fileExt() } : {});
        node = data.putNode(
          { space: spaceIdValue, token: data.mint('node'), parent: parent?.node.token ?? '', obj: obj.token, created: obj.created, creator: who, children: [], hiddenFrom: new Set(), trashed: false },
          obj,
        );
      }
      const d = (parent?.depth ?? 0) + 1;
      made.push({ node, depth: d, kind });
      // Shortcuts get no children; Lark's 2,000-children limit per parent is kept.
      if (kind !== 'shortcut' && d < depth) parents.push(made.length - 1);
      if (parent && parent.node.children.length >= 2000) parents.splice(parents.indexOf(parentIndex), 1);
    }
    return made;
  };
  const sharedNodes = tree(shared.space_id, shape.wikiDocuments, shape.wikiDepth, wikiMix);
  tree(leadership.space_id, shape.privateSpaceDocuments, Math.min(2, shape.wikiDepth), [['docx', 1]]);

  const docxNodes = sharedNodes.filter((m) => m.kind === 'docx' && m.depth > 1);
  const pick = (k: number, offset: number) =>
    Array.from({ length: Math.min(k, docxNodes.length) }, (_, i) => docxNodes[(Math.floor(((i + 1) * docxNodes.length) / (k + 1)) + offset) % docxNodes.length]!);
  const large = pick(shape.largePages, 0);
  const oversize = pick(shape.oversizePages, 1).filter((m) => !large.includes(m));
  for (const [list, size] of [
    [large, 'large'],
    [oversize, 'oversize'],
  ] as const) {
    for (const m of list) {
      const obj = data.objectOfNode(m.node);
      if (obj?.spec) {
        obj.spec.size = size;
        obj.title = `${obj.title} (${size === 'large' ? 'long' : 'very long'})`;
        obj.spec.title = obj.title;
      }
    }
  }
  const special = new Set([...large, ...oversize]);
  const normal = docxNodes.find((m) => !special.has(m)) ?? sharedNodes[0]!;
  const deepest = sharedNodes.reduce((a, b) => (b.depth > a.depth ? b : a), sharedNodes[0]!);

  const refs: DocsRefs = {
    owners,
    appRoot: appRoot.token,
    teamFolder: team.token,
    deepFolder: deepFolder.token,
    archiveFolder: archive.token,
    privateFolder: privateFolder.token,
    privateDoc: privateDoc.token,
    personal,
    drive: {
      docx: fixed.docx.token,
      doc: fixed.doc.token,
      sheet: fixed.sheet.token,
      bitable: fixed.bitable.token,
      mindnote: fixed.mindnote.token,
      pdf: fixed.pdf.token,
      docxFile: fixed.docxFile.token,
      xlsxFile: fixed.xlsxFile.token,
    },
    space: shared.space_id,
    privateSpace: leadership.space_id,
    deepNode: deepest?.node.token ?? '',
    wikiDoc: { node: normal?.node.token ?? '', document: normal?.node.obj ?? '' },
    largeDocs: large.map((m) => m.node.obj),
    oversizeDocs: oversize.map((m) => m.node.obj),
    spaceNodes: sharedNodes.map((m) => m.node.token),
  };
  data.refs = refs;
  return data;
}

/** The seed used when the shape names none. */
export const defaultDocsSeed = (tenantKey: string) => `docs:${tenantKey}`;
