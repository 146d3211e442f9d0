import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigWikiDocsShape } from '../../simulator/data/docs/index.js';
import { MODULE_RATE_LIMITS } from '../../src/connectors/index.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { callCounter, configureDocs, live, records, runDocs } from './docs-helpers.js';

const TENANT = 'tenant-docs-big';

/**
 * A measurement more than a test: the calls a first run and a no-change run make over the
 * simulator's 2,000-page wiki (bigWikiDocsShape: 5 levels, 20 pages of 1.5 MB, 2 over 10 MB), and
 * the time they would take at Lark's limits. About a minute here; opt in with DOCS_BIG_WIKI=1.
 */
describe.runIf(process.env.DOCS_BIG_WIKI === '1')('docs module over a 2,000-page wiki (DOCS_BIG_WIKI=1)', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 50 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    stack.data.docs(TENANT, bigWikiDocsShape);
    await openTenant(stack, TENANT);
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  /**
   * Seconds the calls would take at the pacer's real (unscaled) rates: the listing's calls one
   * after the other, then the content phase, where a document's Markdown and revision go at once
   * (separate budgets), so the slower of the two counts.
   */
  const atLarkPace = (byApi: Record<string, number>) => {
    const secs = (api: string) => {
      const limit = MODULE_RATE_LIMITS.get(api);
      return limit ? (byApi[api] ?? 0) / limit.perSecond : 0;
    };
    const parallel = ['docs.content', 'docx.document.get'];
    const serial = Object.keys(byApi).filter((api) => !parallel.includes(api));
    return serial.reduce((s, api) => s + secs(api), 0) + Math.max(...parallel.map(secs));
  };

  it('first run, then a run without changes', async () => {
    const data = stack.data.docs(TENANT);
    await configureDocs(stack, TENANT, { sources: [{ wikiSpaceId: data.refs.space }] });
    const calls = callCounter(data);
    let t = Date.now();
    const first = await runDocs(stack, TENANT, 600_000);
    const firstMs = Date.now() - t;
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    const firstCalls = calls.byApi();
    const docs = live(await records(stack, TENANT, 'docs_content')).length;

    calls.mark();
    t = Date.now();
    const second = await runDocs(stack, TENANT, 600_000);
    const secondMs = Date.now() - t;
    expect(second.status).toBe('succeeded');
    const secondCalls = calls.byApi();
    expect(calls.content()).toBe(0);
    expect(calls.count('drive.metas.batch_query')).toBeLessThanOrEqual(Math.ceil(docs / 200));
    console.log(
      [
        `docs over bigWikiDocsShape: ${data.refs.spaceNodes.length} nodes, ${docs} documents in docs_content`,
        `  first run: ${JSON.stringify(firstCalls)} in ${(firstMs / 1000).toFixed(1)} s here (pacer x50, no simulator limits); ~${Math.round(atLarkPace(firstCalls))} s at Lark's limits`,
        `  no-change run: ${JSON.stringify(secondCalls)} in ${(secondMs / 1000).toFixed(1)} s here; ~${Math.round(atLarkPace(secondCalls))} s at Lark's limits`,
      ].join('\n'),
    );
  }, 900_000);
});
