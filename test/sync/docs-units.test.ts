import { describe, expect, it } from 'vitest';
import { Value } from '@sinclair/typebox/value';
import { buildBlocks, renderMarkdown, type DocSpec } from '../../simulator/data/docs/index.js';
import { CollapsedLines, blocksToMarkdown } from '../../src/connectors/docs/blocks-markdown.js';
import { DocsConfig, filterOf, inScope, patternError, sourceOf, sourcesOf } from '../../src/connectors/docs/config.js';
import type { LarkBlock } from '../../src/connectors/docs/lark-types.js';
import { refreshed } from '../../src/connectors/docs/known-check.js';
import { structureDue } from '../../src/connectors/docs/tree-refresh.js';

describe('docs config', () => {
  it('reads sources from ids and from URLs copied on either brand', () => {
    expect(sourceOf({ wikiSpaceId: '7001' })).toEqual({ kind: 'space', spaceId: '7001', partition: 'wiki:7001' });
    expect(sourceOf({ folderToken: 'fldcnAbc12' })).toMatchObject({ kind: 'folder', partition: 'folder:fldcnAbc12' });
    expect(sourceOf({ url: 'https://acme.feishu.cn/wiki/wikcnAbCdE?from=x' })).toMatchObject({ kind: 'node', nodeToken: 'wikcnAbCdE', partition: 'node:wikcnAbCdE' });
    expect(sourceOf({ url: 'https://acme.larksuite.com/wiki/space/7123456' })).toMatchObject({ kind: 'space', spaceId: '7123456' });
    expect(sourceOf({ url: 'https://acme.sg.larksuite.com/drive/folder/fldcnXyZ99#top' })).toMatchObject({ kind: 'folder', folderToken: 'fldcnXyZ99' });
    expect(sourceOf({ url: 'https://acme.feishu.cn/docx/doxcnQwErTy' })).toMatchObject({ kind: 'doc', docType: 'docx', partition: 'doc:doxcnQwErTy' });
    expect(sourceOf({ url: 'https://acme.feishu.cn/docs/doccnLegacy1' })).toMatchObject({ kind: 'doc', docType: 'doc' });
    expect(sourceOf({ url: 'https://acme.feishu.cn/sheets/shtcnSheet1' })).toMatchObject({ kind: 'doc', docType: 'sheet' });
    expect(sourceOf({ url: 'https://acme.feishu.cn/base/bascnBase01' })).toMatchObject({ kind: 'doc', docType: 'bitable' });
    expect(sourceOf({ url: 'https://acme.feishu.cn/file/boxcnFile01' })).toMatchObject({ kind: 'doc', docType: 'file' });
    expect(sourceOf({ url: 'https://evil.example.com/wiki/wikcnAbCdE' })).toBeUndefined();
    // The same root twice is one source.
    const config = Value.Default(DocsConfig, { sources: [{ folderToken: 'fldcnAbc12' }, { url: 'https://a.feishu.cn/drive/folder/fldcnAbc12' }] });
    expect(sourcesOf(config as never)).toHaveLength(1);
  });

  it('says where a regular expression is invalid', () => {
    expect(patternError('^Handbook / .*')).toBeUndefined();
    expect(patternError('\\p{Script=Han}+')).toBeUndefined();
    expect(patternError('a(b')).toEqual({ index: 3, reason: 'Unterminated group' });
    expect(patternError('x{2,1}')).toMatchObject({ index: expect.any(Number) });
  });

  it('exclude wins over include; types filter first', () => {
    const f = filterOf(Value.Default(DocsConfig, { sources: [{ folderToken: 'fldcnAbc12' }], include: ['^A / '], exclude: ['secret'] }) as never);
    expect(inScope(f, 'docx', 'A / notes')).toBe(true);
    expect(inScope(f, 'docx', 'A / secret notes')).toBe(false);
    expect(inScope(f, 'docx', 'B / notes')).toBe(false);
    expect(inScope(f, 'sheet', 'A / notes')).toBe(false);
    expect(inScope(f, 'file', 'A / report.pdf')).toBe(true);
  });
});

describe('blocks to Markdown (the >10 MB fallback)', () => {
  it('renders the simulator\'s generated documents the way its Markdown API does', () => {
    for (let i = 0; i < 20; i += 1) {
      const spec: DocSpec = { documentId: `doxcnUnit${i}`, title: `Doc ${i}`, seed: `unit:${i}`, size: 'normal', appended: ['An appended line.'], revision: 2, people: ['ou_a', 'ou_b'] };
      const blocks = buildBlocks(spec);
      // Mentions render by id here (a name lookup would be a call per user): compare with ids as names.
      expect(blocksToMarkdown(blocks as unknown as LarkBlock[])).toBe(renderMarkdown(blocks, (id) => id));
    }
  });
});

describe('docs tree refresh and check pass', () => {
  const sources = sourcesOf({ sources: [{ wikiSpaceId: '7001' }, { folderToken: 'fldcnAbc12' }] } as never);
  const at = (minutesAgo: number) => Date.UTC(2026, 0, 1, 12) - minutesAgo * 60_000;
  const now = at(0);
  const due = (o: Partial<Parameters<typeof structureDue>[0]>) =>
    structureDue({ sources, mode: 'incremental', refreshMinutes: 60, scopeChanged: false, listedAt: {}, now, ...o });

  it('lists a tree never listed, or listed treeRefreshMinutes ago or more; a full run, 0 minutes or a scope change lists all', () => {
    expect(due({})).toEqual(['wiki:7001', 'folder:fldcnAbc12']);
    expect(due({ listedAt: { 'wiki:7001': at(59), 'folder:fldcnAbc12': at(60) } })).toEqual(['folder:fldcnAbc12']);
    expect(due({ listedAt: { 'wiki:7001': at(5), 'folder:fldcnAbc12': at(5) } })).toEqual([]);
    // A stamp from the future (a clock set back) is not trusted.
    expect(due({ listedAt: { 'wiki:7001': at(-10), 'folder:fldcnAbc12': at(5) } })).toEqual(['wiki:7001']);
    const fresh = { 'wiki:7001': at(1), 'folder:fldcnAbc12': at(1) };
    expect(due({ listedAt: fresh, mode: 'full' })).toHaveLength(2);
    expect(due({ listedAt: fresh, refreshMinutes: 0 })).toHaveLength(2);
    expect(due({ listedAt: fresh, scopeChanged: true })).toHaveLength(2);
  });

  it('rewrites a known node with a newer edit time or a new title only; a shortcut keeps its own title', () => {
    const node = {
      key: 'wikcnA',
      partition: 'wiki:7001',
      raw: { node_token: 'wikcnA', title: 'Old', obj_edit_time: '1700000000', node_type: 'origin' },
      columns: { token: 'wikcnA', obj_token: 'doxcnA', obj_type: 'docx', title: 'Old', path: 'Handbook / Team / Old', edited_time: new Date(1_700_000_000_000).toISOString() },
    };
    expect(refreshed(node, { doc_token: 'doxcnA', title: 'Old', latest_modify_time: '1700000000' })).toBeUndefined();
    const edited = refreshed(node, { doc_token: 'doxcnA', title: 'Old', latest_modify_time: '1700000100' })!;
    expect(edited.columns).toMatchObject({ edited_time: new Date(1_700_000_100_000).toISOString(), path: 'Handbook / Team / Old' });
    expect(edited.raw).toMatchObject({ obj_edit_time: '1700000100' });
    const renamed = refreshed(node, { doc_token: 'doxcnA', title: 'New', latest_modify_time: '1700000000' })!;
    expect(renamed.columns).toMatchObject({ title: 'New', path: 'Handbook / Team / New', edited_time: node.columns.edited_time });
    const shortcut = { ...node, raw: { ...node.raw, node_type: 'shortcut' } };
    expect(refreshed(shortcut, { doc_token: 'doxcnA', title: 'Target title', latest_modify_time: '1700000000' })).toBeUndefined();
  });
});

describe('Markdown lines collapsed as they come', () => {
  it('equals one join with runs of newlines cut to two', () => {
    const pieces = ['', '', '\n', '\n\n', '\n\n\n', 'a', 'b\n', '\nc', 'd\n\n\ne', 'f\n\n\n', '\n\n\ng\n\n\n\nh', '> '];
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let trial = 0; trial < 2000; trial += 1) {
      const lines = Array.from({ length: 1 + Math.floor(rnd() * 14) }, () => pieces[Math.floor(rnd() * pieces.length)]!);
      const out = new CollapsedLines();
      for (const l of lines) out.push(l);
      expect(out.finish(), JSON.stringify(lines)).toBe(lines.join('\n').replace(/\n{3,}/g, '\n\n'));
    }
  });
});
