import { seededRandom } from '../support.js';

/**
 * What a document says, and its three renderings (../shared/lark/docs-wiki.md §3, docs-content.md
 * §5.1–5.3): the docx block tree (the source of truth), Markdown as `docs/v1/content` answers it,
 * and plain text as `raw_content` answers it. A document's content is a small `DocSpec` (a seed, a
 * size class and the edits made since), expanded into blocks only when read and kept in a
 * process-wide cache bounded by size, so a 2,000-page wiki costs nothing until pages are read.
 */

/** block_type numbers (docs-content.md §5.3). */
export const BlockType = {
  page: 1,
  text: 2,
  heading1: 3,
  heading2: 4,
  heading3: 5,
  bullet: 12,
  ordered: 13,
  code: 14,
  quote: 15,
  todo: 17,
  bitable: 18,
  callout: 19,
  divider: 22,
  image: 27,
  sheet: 30,
  table: 31,
  tableCell: 32,
} as const;

export interface TextElementStyle {
  bold: boolean;
  italic: boolean;
  strikethrough: boolean;
  underline: boolean;
  inline_code: boolean;
  /** Lark sends link URLs percent-encoded. */
  link?: { url: string };
}

export type TextElement =
  | { text_run: { content: string; text_element_style: TextElementStyle } }
  | { mention_user: { user_id: string; text_element_style: TextElementStyle } };

/** A docx block as the blocks API answers it: ids, type, and one payload key named for the type. */
export interface SimBlock {
  block_id: string;
  parent_id: string;
  children?: string[];
  block_type: number;
  [payload: string]: unknown;
}

/** Size classes of generated documents. `oversize` renders to more than 10 MB of Markdown. */
export type DocSize = 'normal' | 'large' | 'oversize';

/** Everything a revision of a document's content is derived from. */
export interface DocSpec {
  documentId: string;
  title: string;
  seed: string;
  size: DocSize;
  /** Paragraphs added by edits, in order. */
  appended: string[];
  /** When set, the body is these paragraphs alone (the generated body was replaced). */
  replaced?: string[];
  /** Revision number (for block ids of appended paragraphs). */
  revision: number;
  /** Open ids that generated text may @mention. */
  people: string[];
}

/** Payload keys of text-like blocks, whose `elements` carry the words. */
const TEXT_KEYS = ['page', 'text', 'heading1', 'heading2', 'heading3', 'bullet', 'ordered', 'code', 'quote', 'todo'] as const;

const WORDS =
  'the team plan release review design service customer budget metric report quarter roadmap onboarding policy process security incident deploy backend frontend storage query index cache latency throughput owner milestone feedback launch support contract invoice travel hiring interview training handbook guideline checklist template meeting notes decision risk dependency estimate sprint backlog ticket version migration schema import export archive'.split(
    ' ',
  );
const CODE_LANGS: Record<number, string> = { 1: '', 7: 'bash', 22: 'go', 28: 'json', 30: 'javascript', 49: 'python', 56: 'sql', 63: 'typescript' };

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** A Lark-looking id (`doxcn` + 22 characters) derived from a seed and a counter. */
export function blockId(seed: string, n: number | string): string {
  const rnd = seededRandom(`${seed}#${n}`);
  let out = 'doxcn';
  for (let i = 0; i < 22; i += 1) out += ALNUM[Math.floor(rnd() * ALNUM.length)] ?? 'A';
  return out;
}

const plain = (): TextElementStyle => ({ bold: false, italic: false, strikethrough: false, underline: false, inline_code: false });
const run = (content: string, style: Partial<TextElementStyle> = {}): TextElement => ({ text_run: { content, text_element_style: { ...plain(), ...style } } });

function sentence(rnd: () => number, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i += 1) out.push(WORDS[Math.floor(rnd() * WORDS.length)] ?? 'plan');
  const s = out.join(' ');
  return `${s.charAt(0).toUpperCase()}${s.slice(1)}.`;
}

function paragraph(rnd: () => number, sentences: number, wordsEach: number): string {
  const out: string[] = [];
  for (let i = 0; i < sentences; i += 1) out.push(sentence(rnd, wordsEach - 2 + Math.floor(rnd() * 5)));
  return out.join(' ');
}

/** `n` lines of made-up prose, the same for the same seed (file bodies, sheet cells). */
export function fillerLines(seed: string, n: number, words = 10): string[] {
  const rnd = seededRandom(`filler:${seed}`);
  return Array.from({ length: n }, () => sentence(rnd, words - 2 + Math.floor(rnd() * 5)));
}

/** Builds the block list (pre-order, page first) of one revision. */
export function buildBlocks(spec: DocSpec): SimBlock[] {
  const blocks: SimBlock[] = [];
  let n = 0;
  const page: SimBlock = {
    block_id: spec.documentId,
    parent_id: '',
    children: [],
    block_type: BlockType.page,
    page: { elements: [run(spec.title)], style: { align: 1 } },
  };
  blocks.push(page);
  const add = (parent: SimBlock, type: number, key: string, payload: unknown, idSeed = spec.seed): SimBlock => {
    n += 1;
    const b: SimBlock = { block_id: blockId(idSeed, n), parent_id: parent.block_id, block_type: type, [key]: payload };
    (parent.children ??= []).push(b.block_id);
    blocks.push(b);
    return b;
  };
  const textPayload = (elements: TextElement[], style: Record<string, unknown> = { align: 1, folded: false }) => ({ elements, style });
  const rnd = seededRandom(`content:${spec.seed}`);

  if (spec.replaced) {
    for (const p of spec.replaced) add(page, BlockType.text, 'text', textPayload([run(p)]));
  } else if (spec.size === 'normal') {
    const sections = 2 + Math.floor(rnd() * 3);
    for (let s = 0; s < sections; s += 1) {
      add(page, BlockType.heading1, 'heading1', textPayload([run(`${sentence(rnd, 3).slice(0, -1)}`)]));
      const first = paragraph(rnd, 2, 9);
      const elements: TextElement[] = [run(`${first} `)];
      const flavour = rnd();
      if (flavour < 0.3) elements.push(run('Read the guide', { link: { url: encodeURIComponent(`https://example.com/guide/${s}?ref=wiki`) } }), run('.'));
      else if (flavour < 0.55) elements.push(run('Owner: '), { mention_user: { user_id: spec.people[s % Math.max(1, spec.people.length)] ?? 'ou_unknown', text_element_style: plain() } });
      else if (flavour < 0.8) elements.push(run('Important', { bold: true }), run(': use '), run('make deploy', { inline_code: true }), run(' only.'));
      add(page, BlockType.text, 'text', textPayload(elements));
      const kind = (s + Math.floor(rnd() * 7)) % 7;
      if (kind === 0 || s === 0) {
        const bullets = 2 + Math.floor(rnd() * 3);
        for (let b = 0; b < bullets; b += 1) {
          const item = add(page, BlockType.bullet, 'bullet', textPayload([run(sentence(rnd, 5).slice(0, -1))]));
          if (b === 0) add(item, BlockType.bullet, 'bullet', textPayload([run(sentence(rnd, 4).slice(0, -1))]));
        }
      }
      if (kind === 1 || s === 0) {
        for (let b = 0; b < 3; b += 1) add(page, BlockType.ordered, 'ordered', textPayload([run(`Step ${b + 1}: ${sentence(rnd, 4).slice(0, -1)}`)]));
      }
      if (kind === 2 || s === 1) {
        const lang = [63, 49, 56, 7][Math.floor(rnd() * 4)] ?? 1;
        const code = lang === 63 ? `const plan = await load('${WORDS[s] ?? 'plan'}');\nconsole.log(plan.owner);` : lang === 49 ? `def run():\n    return ${s + 1}` : lang === 56 ? `SELECT id, title FROM docs WHERE rev > ${s};` : `make deploy ENV=staging`;
        add(page, BlockType.code, 'code', { elements: [run(code)], style: { language: lang, wrap: false } });
      }
      if (kind === 3 || s === 0) add(page, BlockType.quote, 'quote', textPayload([run(sentence(rnd, 8))]));
      if (kind === 4) {
        add(page, BlockType.todo, 'todo', { elements: [run(sentence(rnd, 4).slice(0, -1))], style: { done: true } });
        add(page, BlockType.todo, 'todo', { elements: [run(sentence(rnd, 4).slice(0, -1))], style: { done: false } });
      }
      if (kind === 5 || s === 1) {
        // A 3 x 2 table: cells are table_cell blocks, each holding text blocks (docs-content.md §5.3).
        const rows = 3;
        const cols = 2;
        const table = add(page, BlockType.table, 'table', { cells: [] as string[], property: { row_size: rows, column_size: cols, column_width: [200, 300], header_row: true } });
        const cells = (table.table as { cells: string[] }).cells;
        for (let r = 0; r < rows; r += 1) {
          for (let c = 0; c < cols; c += 1) {
            const cell = add(table, BlockType.tableCell, 'table_cell', {});
            cells.push(cell.block_id);
            const label = r === 0 ? (c === 0 ? 'Item' : 'Notes') : c === 0 ? `Row ${r}` : sentence(rnd, 3).slice(0, -1);
            add(cell, BlockType.text, 'text', textPayload([run(label)]));
            if (r === 2 && c === 1) add(cell, BlockType.text, 'text', textPayload([run('second line')]));
          }
        }
      }
      if (kind === 6 || s === 0) add(page, BlockType.image, 'image', { token: `boxcn${blockId(`${spec.seed}:img`, s).slice(5)}`, width: 640, height: 360, align: 2 });
      if (s === 0) {
        const callout = add(page, BlockType.callout, 'callout', { background_color: 5, border_color: 5, emoji_id: 'bulb' });
        add(callout, BlockType.text, 'text', textPayload([run(sentence(rnd, 6))]));
        add(page, BlockType.divider, 'divider', {});
        // Embedded objects: `<spreadsheet_token>_<sheet_id>` and `<app_token>_<table_id>` (docs-wiki.md §3).
        const ref = (kind: string, n: number) => blockId(`${spec.seed}:${kind}`, 0).slice(5, 5 + n);
        add(page, BlockType.sheet, 'sheet', { token: `shtcn${ref('sheet', 22)}_${ref('sheetid', 6)}`, row_size: 10, column_size: 4 });
        add(page, BlockType.bitable, 'bitable', { token: `bascn${ref('base', 22)}_tbl${ref('table', 13)}`, view_type: 1 });
      }
    }
  } else {
    // Large pages: headings and paragraphs until the text passes the target size (large: ~1.5 MB
    // in a few thousand blocks; oversize: past 10 MB in longer paragraphs).
    const target = spec.size === 'large' ? 1_500_000 : 10.5 * 1024 * 1024;
    const sentences = spec.size === 'large' ? 6 : 24;
    let bytes = spec.title.length;
    let s = 0;
    while (bytes < target) {
      const heading = `Part ${s + 1}: ${sentence(rnd, 3).slice(0, -1)}`;
      add(page, BlockType.heading2, 'heading2', textPayload([run(heading)]));
      bytes += heading.length + 5;
      for (let p = 0; p < 8; p += 1) {
        const text = paragraph(rnd, sentences, 12);
        add(page, BlockType.text, 'text', textPayload([run(text)]));
        bytes += text.length + 2;
      }
      if (s % 25 === 0) add(page, BlockType.bullet, 'bullet', textPayload([run(sentence(rnd, 6).slice(0, -1))]));
      s += 1;
    }
  }
  spec.appended.forEach((text, k) => add(page, BlockType.text, 'text', textPayload([run(text)]), `${spec.seed}:edit:${k}`));
  return blocks;
}

// ------------------------------------------------------------------ rendering

export type NameOf = (openId: string) => string;

function elementsOf(b: SimBlock): TextElement[] | undefined {
  for (const k of TEXT_KEYS) {
    const p = b[k] as { elements?: TextElement[] } | undefined;
    if (p?.elements) return p.elements;
  }
  return undefined;
}

/** A block's words as plain text (mentions as `@Name`). */
export function plainText(elements: TextElement[], nameOf: NameOf): string {
  return elements.map((e) => ('text_run' in e ? e.text_run.content : `@${nameOf(e.mention_user.user_id)}`)).join('');
}

function inlineMarkdown(elements: TextElement[], nameOf: NameOf): string {
  return elements
    .map((e) => {
      if ('mention_user' in e) return `@${nameOf(e.mention_user.user_id)}`;
      const { content, text_element_style: st } = e.text_run;
      let out = content;
      if (st.inline_code) out = `\`${out}\``;
      if (st.bold) out = `**${out}**`;
      if (st.italic) out = `*${out}*`;
      if (st.strikethrough) out = `~~${out}~~`;
      if (st.link) out = `[${out}](${decodeURIComponent(st.link.url)})`;
      return out;
    })
    .join('');
}

/** Headings that stand in for embedded objects in Markdown (docs-content.md §5.1: "headings with no data"; the wording is made up). */
export const EMBED_HEADINGS = { sheet: '### Sheet', bitable: '### Bitable' } as const;

/**
 * The Markdown of `docs/v1/content`. Lark's exact dialect is not documented; the simulator's:
 * the title as `# title`, headingN as N+1 `#`s (capped at 6), lists with two-space nesting,
 * fenced code, `>` quotes and callouts, `- [ ]` todos, `---` dividers, `![image](token)` images,
 * tables as pipe tables whose cells join their paragraphs with `<br>` ("HTML-ish cell breaks"),
 * and embedded sheets and Bases as a bare heading (EMBED_HEADINGS), without their data.
 */
export function renderMarkdown(blocks: SimBlock[], nameOf: NameOf): string {
  const byId = new Map(blocks.map((b) => [b.block_id, b]));
  const page = blocks[0];
  if (!page) return '';
  const out: string[] = [`# ${plainText(elementsOf(page) ?? [], nameOf)}`];
  const cellText = (cellId: string) =>
    (byId.get(cellId)?.children ?? [])
      .map((id) => byId.get(id))
      .map((b) => (b ? inlineMarkdown(elementsOf(b) ?? [], nameOf).replaceAll('|', '\\|') : ''))
      .join('<br>');

  const walk = (ids: string[], indent: string, quote: string, inList = false, leading = true) => {
    let ordinal = 0;
    let previousList = inList;
    let first = true;
    for (const id of ids) {
      const b = byId.get(id);
      if (!b) continue;
      const isList = b.block_type === BlockType.bullet || b.block_type === BlockType.ordered || b.block_type === BlockType.todo;
      if (!(isList && previousList) && (leading || !first)) out.push(quote.trimEnd());
      first = false;
      previousList = isList;
      ordinal = b.block_type === BlockType.ordered ? ordinal + 1 : 0;
      const words = inlineMarkdown(elementsOf(b) ?? [], nameOf);
      const line = (s: string) => out.push(`${quote}${indent}${s}`);
      switch (b.block_type) {
        case BlockType.text:
          line(words);
          break;
        case BlockType.heading1:
        case BlockType.heading2:
        case BlockType.heading3:
          line(`${'#'.repeat(Math.min(6, b.block_type - BlockType.heading1 + 2))} ${words}`);
          break;
        case BlockType.bullet:
          line(`- ${words}`);
          break;
        case BlockType.ordered:
          line(`${ordinal}. ${words}`);
          break;
        case BlockType.todo:
          line(`- [${(b.todo as { style?: { done?: boolean } }).style?.done ? 'x' : ' '}] ${words}`);
          break;
        case BlockType.code: {
          const code = b.code as { elements: TextElement[]; style?: { language?: number } };
          line(`\`\`\`${CODE_LANGS[code.style?.language ?? 1] ?? ''}`);
          for (const l of plainText(code.elements, nameOf).split('\n')) line(l);
          line('```');
          break;
        }
        case BlockType.quote:
          line(`> ${words}`);
          break;
        case BlockType.divider:
          line('---');
          break;
        case BlockType.image:
          line(`![image](${(b.image as { token: string }).token})`);
          break;
        case BlockType.sheet:
          line(EMBED_HEADINGS.sheet);
          break;
        case BlockType.bitable:
          line(EMBED_HEADINGS.bitable);
          break;
        case BlockType.table: {
          const t = b.table as { cells: string[]; property: { row_size: number; column_size: number } };
          const cols = t.property.column_size;
          for (let r = 0; r < t.property.row_size; r += 1) {
            line(`| ${t.cells.slice(r * cols, (r + 1) * cols).map(cellText).join(' | ')} |`);
            if (r === 0) line(`|${' --- |'.repeat(cols)}`);
          }
          break;
        }
        case BlockType.callout:
          walk(b.children ?? [], indent, `${quote}> `, false, false);
          break;
        default:
          break;
      }
      if (b.children && (isList || b.block_type === BlockType.text)) walk(b.children, `${indent}  `, quote, isList);
    }
  };
  walk(page.children ?? [], '', '');
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n')}\n`;
}

/**
 * The plain text of `raw_content`: the title, then every text-bearing block (table cells and
 * callouts included, through their text children) on its own line, in document order. Images,
 * dividers and embedded sheets or Bases contribute nothing (unconfirmed; nothing to write).
 */
export function renderRaw(blocks: SimBlock[], nameOf: NameOf): string {
  const lines: string[] = [];
  for (const b of blocks) {
    const elements = elementsOf(b);
    if (elements) lines.push(plainText(elements, nameOf));
  }
  return `${lines.join('\n')}\n`;
}

// ------------------------------------------------------------------ the cache

export interface Rendered {
  blocks: SimBlock[];
  index: Map<string, number>;
  markdown: Map<string, string>;
  raw: Map<string, string>;
  bytes: number;
}

/** Expanded revisions, least recently used first; bounded by approximate text size. */
class RenderCache {
  private readonly entries = new Map<string, Rendered>();
  private bytes = 0;
  constructor(private readonly budget: number) {}

  get(key: string, build: () => SimBlock[]): Rendered {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const blocks = build();
    let bytes = 0;
    for (const b of blocks) bytes += 200 + (elementsOf(b)?.reduce((n, e) => n + ('text_run' in e ? e.text_run.content.length : 30), 0) ?? 0);
    const entry: Rendered = { blocks, index: new Map(blocks.map((b, i) => [b.block_id, i])), markdown: new Map(), raw: new Map(), bytes: bytes * 3 };
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.budget || this.entries.size <= 1) break;
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
    return entry;
  }
}

const cache = new RenderCache(160 * 1024 * 1024);

/** The expanded revision (blocks, and renderings made so far) for a cache key unique to the document revision. */
export function rendered(key: string, spec: DocSpec): Rendered {
  return cache.get(key, () => buildBlocks(spec));
}

export function markdownOf(r: Rendered, lang: string, nameOf: NameOf): string {
  let md = r.markdown.get(lang);
  if (md === undefined) {
    md = renderMarkdown(r.blocks, nameOf);
    r.markdown.set(lang, md);
  }
  return md;
}

export function rawOf(r: Rendered, lang: string, nameOf: NameOf): string {
  let raw = r.raw.get(lang);
  if (raw === undefined) {
    raw = renderRaw(r.blocks, nameOf);
    r.raw.set(lang, raw);
  }
  return raw;
}
