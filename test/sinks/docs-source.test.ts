import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKDOWN_PART_CHARS, readMarkdownParts } from '../../src/sinks/docs-source.js';
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

  it('reads a large Markdown body back in parts of at most a million characters, in order, and a small one in one part', async () => {
    // Multi-byte text as well, so that parts cut by characters, not bytes, join back exactly.
    const big = Array.from({ length: 40_000 }, (_, i) => `Paragraph ${i}: Überblick — 概要 ${'x'.repeat(i % 50)}\n`).join('');
    expect(big.length).toBeGreaterThan(2 * MARKDOWN_PART_CHARS);
    const large = larkToken();
    const small = larkToken();
    await writeDoc(db.db, TENANT, { token: large, title: 'Large', markdown: big });
    await writeDoc(db.db, TENANT, { token: small, title: 'Small', markdown: 'Short page.' });
    const parts = await readMarkdownParts(db.db, TENANT, large);
    expect(parts.length).toBe(Math.ceil(big.length / MARKDOWN_PART_CHARS));
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(MARKDOWN_PART_CHARS);
    expect(parts.join('')).toBe(big);
    expect(await readMarkdownParts(db.db, TENANT, small)).toEqual(['Short page.']);
    expect(await readMarkdownParts(db.db, TENANT, larkToken())).toEqual([]);
  });
});
