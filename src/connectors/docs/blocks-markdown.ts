import type { LarkBlock } from './lark-types.js';

/**
 * Docx blocks -> Markdown, for the documents `docs/v1/content` will not serve (over 10 MB, code
 * 2889925). Small on purpose; the Markdown API stays the source of the usual rendering.
 *
 * Why not a library: `feishu-docx` (npm, 0.7.0, ~1,000 downloads a month) was evaluated. It does
 * render blocks to GFM, but it creates a jsdom document to build table HTML, lists `typescript`,
 * `dotenv`, `jsdom` and an older copy of itself among its runtime dependencies, and has one
 * maintainer's sporadic releases: too heavy and too loosely kept for a server dependency used only
 * on oversize documents. No other block-to-Markdown package on npm is better kept. This renderer
 * covers the block types of docs-content.md §5.3 that carry text (page, text, headings 1-9,
 * bullet, ordered, code, quote, todo, callout and quote containers, tables, dividers, images by
 * token, embedded sheets and Bases as a heading), and skips the others.
 */

const T = {
  Page: 1,
  Text: 2,
  Heading1: 3,
  Heading9: 11,
  Bullet: 12,
  Ordered: 13,
  Code: 14,
  Quote: 15,
  Todo: 17,
  Bitable: 18,
  Callout: 19,
  Divider: 22,
  Image: 27,
  Sheet: 30,
  Table: 31,
  TableCell: 32,
  QuoteContainer: 34,
} as const;

const KEYS: Record<number, string> = { 1: 'page', 2: 'text', 12: 'bullet', 13: 'ordered', 14: 'code', 15: 'quote', 17: 'todo' };
for (let h = 1; h <= 9; h += 1) KEYS[T.Heading1 + h - 1] = `heading${h}`;

/** Code block languages (Lark's numbering, common ones only; others render without a tag). */
const LANGS: Record<number, string> = { 7: 'bash', 8: 'csharp', 9: 'cpp', 10: 'c', 12: 'css', 22: 'go', 24: 'html', 28: 'json', 29: 'java', 30: 'javascript', 32: 'kotlin', 39: 'markdown', 49: 'python', 52: 'ruby', 53: 'rust', 56: 'sql', 60: 'shell', 61: 'swift', 63: 'typescript', 66: 'xml', 67: 'yaml' };

interface Style {
  bold?: boolean;
  italic?: boolean;
  strikethrough?: boolean;
  inline_code?: boolean;
  link?: { url?: string };
}
interface Element {
  text_run?: { content?: string; text_element_style?: Style };
  mention_user?: { user_id?: string };
  mention_doc?: { title?: string; url?: string };
  equation?: { content?: string };
}

function payload(b: LarkBlock): { elements?: Element[]; style?: Record<string, unknown> } | undefined {
  const key = KEYS[b.block_type ?? 0];
  return key ? (b[key] as { elements?: Element[]; style?: Record<string, unknown> } | undefined) : undefined;
}

function decodeUrl(url: string): string {
  try {
    return decodeURIComponent(url);
  } catch {
    return url;
  }
}

function inline(elements: Element[] | undefined, plain = false): string {
  return (elements ?? [])
    .map((e) => {
      if (e.mention_user) return `@${e.mention_user.user_id ?? ''}`;
      if (e.mention_doc) return plain ? (e.mention_doc.title ?? '') : `[${e.mention_doc.title ?? ''}](${decodeUrl(e.mention_doc.url ?? '')})`;
      if (e.equation) return plain ? (e.equation.content ?? '') : `$${(e.equation.content ?? '').trim()}$`;
      const run = e.text_run;
      if (!run) return '';
      let out = run.content ?? '';
      if (plain || out.trim() === '') return out;
      const st = run.text_element_style ?? {};
      if (st.inline_code) out = `\`${out}\``;
      if (st.bold) out = `**${out}**`;
      if (st.italic) out = `*${out}*`;
      if (st.strikethrough) out = `~~${out}~~`;
      if (st.link?.url) out = `[${out}](${decodeUrl(st.link.url)})`;
      return out;
    })
    .join('');
}

export function blocksToMarkdown(blocks: LarkBlock[]): string {
  const byId = new Map<string, LarkBlock>();
  for (const b of blocks) if (b.block_id) byId.set(b.block_id, b);
  const page = blocks.find((b) => b.block_type === T.Page) ?? blocks[0];
  if (!page) return '';
  const out = new CollapsedLines();
  out.push(`# ${inline(payload(page)?.elements, true)}`);
  const kids = (b: LarkBlock) => (b.children ?? []).map((id) => byId.get(id)).filter((c): c is LarkBlock => c !== undefined);

  const cellText = (cell: LarkBlock) =>
    kids(cell)
      .map((c) => inline(payload(c)?.elements).replaceAll('|', '\\|'))
      .join('<br>');

  // A blank line between blocks, except inside a run of list items (nested ones included) and
  // before the first block of a callout.
  const walk = (list: LarkBlock[], indent: string, quote: string, inList = false, leading = true) => {
    let ordinal = 0;
    let prevList = inList;
    let first = true;
    for (const b of list) {
      const type = b.block_type ?? 0;
      const isList = type === T.Bullet || type === T.Ordered || type === T.Todo;
      if (!(isList && prevList) && (leading || !first)) out.push(quote.trimEnd());
      first = false;
      prevList = isList;
      ordinal = type === T.Ordered ? ordinal + 1 : 0;
      const line = (s: string) => out.push(`${quote}${indent}${s}`);
      const words = inline(payload(b)?.elements);
      if (type >= T.Heading1 && type <= T.Heading9) line(`${'#'.repeat(Math.min(6, type - T.Heading1 + 2))} ${words}`);
      else if (type === T.Text) line(words);
      else if (type === T.Bullet) line(`- ${words}`);
      else if (type === T.Ordered) line(`${ordinal}. ${words}`);
      else if (type === T.Todo) line(`- [${(payload(b)?.style as { done?: boolean } | undefined)?.done ? 'x' : ' '}] ${words}`);
      else if (type === T.Quote) line(`> ${words}`);
      else if (type === T.Divider) line('---');
      else if (type === T.Image) line(`![image](${(b.image as { token?: string } | undefined)?.token ?? ''})`);
      else if (type === T.Sheet) line('### Sheet');
      else if (type === T.Bitable) line('### Bitable');
      else if (type === T.Code) {
        const code = b.code as { elements?: Element[]; style?: { language?: number } } | undefined;
        line(`\`\`\`${LANGS[code?.style?.language ?? 0] ?? ''}`);
        for (const l of inline(code?.elements, true).split('\n')) line(l);
        line('```');
      } else if (type === T.Table) {
        const t = b.table as { cells?: string[]; property?: { row_size?: number; column_size?: number } } | undefined;
        const cols = t?.property?.column_size ?? 0;
        const rows = t?.property?.row_size ?? 0;
        const cells = t?.cells ?? [];
        for (let r = 0; r < rows && cols > 0; r += 1) {
          line(`| ${cells.slice(r * cols, (r + 1) * cols).map((id) => { const c = byId.get(id); return c ? cellText(c) : ''; }).join(' | ')} |`);
          if (r === 0) line(`|${' --- |'.repeat(cols)}`);
        }
      } else if (type === T.Callout || type === T.QuoteContainer) {
        walk(kids(b), indent, `${quote}> `, false, false);
        continue;
      } else {
        // Grids, views and other containers: their text-bearing children still count.
        if (type !== T.TableCell) walk(kids(b), indent, quote);
        continue;
      }
      if (b.children?.length && (isList || type === T.Text)) walk(kids(b), `${indent}  `, quote, isList);
    }
  };
  walk(kids(page), '', '');
  return `${out.finish()}\n`;
}

/**
 * Lines joined by '\n' with every run of three or more newlines made two, as
 * `lines.join('\n').replace(/\n{3,}/g, '\n\n')` makes them, collapsed line by line as they come.
 * The parts kept are the lines themselves (a block's words, the very strings its JSON gave), not
 * copies: the one copy is the final join. For a 10 MB page the whole join and its replaced copy
 * were two more 10 MB strings beside the blocks; joined and replaced a few thousand lines at a
 * time, still a 10 MB copy of every line in chunks beside the final text: rendering the docs
 * bench's oversize page (10.5 MB) raised the resident set by 26 MiB then, by 13 now (sampled every
 * 2 ms from a worker thread).
 */
export class CollapsedLines {
  private readonly parts: string[] = [];
  /** newlines at the end of what was taken so far, as given (at most two of them were kept) */
  private run = 0;
  private started = false;

  push(line: string): void {
    // The '\n' joining this line to the one before counts as one of its leading newlines.
    let lead = 0;
    while (lead < line.length && line.charCodeAt(lead) === 10) lead += 1;
    const newlines = lead + (this.started ? 1 : 0);
    this.started = true;
    const more = Math.min(this.run + newlines, 2) - Math.min(this.run, 2);
    if (more > 0) this.parts.push(more === 1 ? '\n' : '\n\n');
    if (lead === line.length) {
      this.run += newlines;
      return;
    }
    let body = lead === 0 ? line : line.slice(lead);
    if (body.includes('\n\n\n')) body = body.replace(/\n{3,}/g, '\n\n');
    this.parts.push(body);
    let trail = 0;
    while (line.charCodeAt(line.length - 1 - trail) === 10) trail += 1;
    this.run = trail;
  }

  finish(): string {
    return this.parts.join('');
  }
}
