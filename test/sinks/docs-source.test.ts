import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKDOWN_PART_CHARS, readMarkdownBlob } from '../../src/sinks/docs-source.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { larkToken, writeDoc } from './sink-fixture.js';

const TENANT = 'tenant-docs-source';

describe('docs_content as the sinks read it', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('reads a large Markdown body back in parts of at most a million characters, one statement each, into one Blob, and a small one in one part', async () => {
    // Multi-byte text as well, so that parts cut by characters, not bytes, join back exactly.
    const big = Array.from({ length: 40_000 }, (_, i) => `Paragraph ${i}: Überblick — 概要 ${'x'.repeat(i % 50)}\n`).join('');
    expect(big.length).toBeGreaterThan(2 * MARKDOWN_PART_CHARS);
    const large = larkToken();
    const small = larkToken();
    await writeDoc(db.db, TENANT, { token: large, title: 'Large', markdown: big });
    await writeDoc(db.db, TENANT, { token: small, title: 'Small', markdown: 'Short page.' });
    // One statement per part: no message from Postgres holds more than a part.
    const statements: string[] = [];
    const logged = db.db.withPlugin({
      transformQuery: (args) => {
        if (args.node.kind === 'RawNode') statements.push(args.node.sqlFragments.join('?'));
        return args.node;
      },
      transformResult: async (args) => args.result,
    });
    const blob = await readMarkdownBlob(logged, TENANT, large, 'text/markdown');
    expect(blob.type).toBe('text/markdown');
    expect(blob.size).toBe(Buffer.byteLength(big));
    expect(await blob.text()).toBe(big);
    expect(statements.filter((q) => q.includes('substr(markdown')).length).toBe(Math.ceil(big.length / MARKDOWN_PART_CHARS));
    expect(await (await readMarkdownBlob(db.db, TENANT, small, 'text/markdown')).text()).toBe('Short page.');
    expect((await readMarkdownBlob(db.db, TENANT, larkToken(), 'text/markdown')).size).toBe(0);
  });
});
