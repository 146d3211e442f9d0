import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { startDataClient, type DataClient } from './data-client.js';
import { caller, sleep, type Call } from './docs-client.js';

// Frequency limits and faults of the docs APIs against shared/lark/docs-content.md §5,
// corrections.md and limits-and-errors.md §3: docx reads 5/s per app answering HTTP 400 + 99991400
// over it, docs/v1/content 5/s (HTTP 429, the general rule), per app across tenants unless
// configured per tenant, drive listings 20/s, configurable limits, and seeded random faults.

const A = 'tk-sim-docs-limits-a';
const B = 'tk-sim-docs-limits-b';

describe('simulator docs limits and faults', () => {
  let client: DataClient;
  let call: Call;
  let tokenA: string;
  let tokenB: string;
  let docsA: DocsTenant;
  let docsB: DocsTenant;
  const shape = { wikiDocuments: 10, largePages: 0, oversizePages: 0, archiveDocuments: 30 };

  beforeAll(async () => {
    client = await startDataClient([A, B]);
    docsA = client.data.docs(A, shape);
    docsB = client.data.docs(B, shape);
    call = caller(client.sim);
    tokenA = await client.tenantToken(A);
    tokenB = await client.tenantToken(B);
  });
  afterAll(async () => {
    await client.stop();
  });
  beforeEach(async () => {
    client.data.enforceRateLimits = true;
    client.data.docsOptions.limits = {};
    client.data.docsOptions.contentLimitScope = 'app';
    client.data.setDocsFaults(undefined);
    // Every window of the previous test has closed.
    await sleep(1100);
  });

  const burst = <T>(n: number, one: (i: number) => Promise<T>) => Promise.all(Array.from({ length: n }, (_, i) => one(i)));

  it('docx reads allow 5/s per app; over it HTTP 400 with 99991400 and the ratelimit headers', async () => {
    const doc = docsA.refs.drive.docx;
    const answers = await burst(8, () => call(tokenA, 'GET', `/open-apis/docx/v1/documents/${doc}/raw_content`));
    const refused = answers.filter((a) => a.body.code === 99991400);
    expect(answers.filter((a) => a.body.code === 0)).toHaveLength(5);
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      expect(r.status).toBe(400);
      expect(r.body.msg).toBe('request trigger frequency limit');
      expect(r.headers.get('x-ogw-ratelimit-limit')).toBe('5');
      expect(Number(r.headers.get('x-ogw-ratelimit-reset'))).toBeGreaterThanOrEqual(1);
    }
    // Each docx read API has its own window: blocks are not affected by raw_content's.
    expect((await call(tokenA, 'GET', `/open-apis/docx/v1/documents/${doc}/blocks`)).body.code).toBe(0);
    expect(docsA.count('docx.raw_content', { code: 99991400 })).toBe(3);
    await sleep(1100);
    expect((await call(tokenA, 'GET', `/open-apis/docx/v1/documents/${doc}/raw_content`)).body.code).toBe(0);
  });

  it('docs/v1/content allows 5/s per app; over it HTTP 429', async () => {
    const answers = await burst(7, () => call(tokenA, 'GET', `/open-apis/docs/v1/content?doc_token=${docsA.refs.drive.docx}&doc_type=docx&content_type=markdown`));
    expect(answers.filter((a) => a.body.code === 0)).toHaveLength(5);
    expect(answers.filter((a) => a.status === 429 && a.body.code === 99991400)).toHaveLength(2);
  });

  it('counts the 5/s per app across tenants by default, per app and tenant when configured', async () => {
    const both = () =>
      burst(6, (i) => {
        const [token, docs] = i % 2 === 0 ? [tokenA, docsA] : [tokenB, docsB];
        return call(token, 'GET', `/open-apis/docx/v1/documents/${docs.refs.drive.docx}/blocks`);
      });
    const shared = await both();
    expect(shared.filter((a) => a.body.code === 0)).toHaveLength(5);
    expect(shared.filter((a) => a.body.code === 99991400)).toHaveLength(1);
    await sleep(1100);
    client.data.docsOptions.contentLimitScope = 'tenant';
    expect((await both()).every((a) => a.body.code === 0)).toBe(true);
  });

  it('takes per-API limits: none at all, or another ceiling', async () => {
    const doc = docsA.refs.drive.docx;
    client.data.docsOptions.limits['docx.document.get'] = null;
    expect((await burst(9, () => call(tokenA, 'GET', `/open-apis/docx/v1/documents/${doc}`))).every((a) => a.body.code === 0)).toBe(true);
    client.data.docsOptions.limits['docx.document.get'] = { perSecond: 2, status: 400 };
    await sleep(1100);
    const limited = await burst(4, () => call(tokenA, 'GET', `/open-apis/docx/v1/documents/${doc}`));
    expect(limited.map((a) => a.body.code).sort()).toEqual([0, 0, 99991400, 99991400]);
  });

  it('allows drive listings 20/s per app and tenant (HTTP 429 over it)', async () => {
    const folder = docsA.refs.archiveFolder;
    const answers = await burst(23, () => call(tokenA, 'GET', `/open-apis/drive/v1/files?folder_token=${folder}&page_size=5`));
    expect(answers.filter((a) => a.body.code === 0)).toHaveLength(20);
    expect(answers.filter((a) => a.status === 429 && a.body.code === 99991400)).toHaveLength(3);
    // Another tenant of the same app has its own window.
    expect((await call(tokenB, 'GET', `/open-apis/drive/v1/files?folder_token=${docsB.refs.archiveFolder}`)).body.code).toBe(0);
  });

  it('injects seeded random faults: about 5 % of calls, the same calls for the same seed, only on the named APIs', async () => {
    client.data.enforceRateLimits = false;
    const run = async () => {
      const failed: number[] = [];
      for (let i = 0; i < 300; i += 1) {
        const res = await call(tokenA, 'GET', `/open-apis/drive/v1/files?folder_token=${docsA.refs.archiveFolder}&page_size=5`);
        if (res.body.code !== 0) {
          expect([res.status, res.body.code]).toEqual([500, 1061001]);
          failed.push(i);
        }
      }
      return failed;
    };
    client.data.setDocsFaults({ rate: 0.05, seed: 'docs-limits' });
    const before = client.data.docsFaultsInjected;
    const first = await run();
    expect(first.length).toBeGreaterThanOrEqual(4);
    expect(first.length).toBeLessThanOrEqual(30);
    expect(client.data.docsFaultsInjected - before).toBe(first.length);
    client.data.setDocsFaults({ rate: 0.05, seed: 'docs-limits' });
    expect(await run()).toEqual(first);

    client.data.setDocsFaults({ rate: 1, seed: 'x', apis: ['docs.content', 'wiki.nodes.list', 'docx.blocks'] });
    expect((await call(tokenA, 'GET', `/open-apis/drive/v1/files?folder_token=${docsA.refs.archiveFolder}`)).body.code).toBe(0);
    const content = await call(tokenA, 'GET', `/open-apis/docs/v1/content?doc_token=${docsA.refs.drive.docx}`);
    expect([content.status, content.body.code]).toEqual([500, 2889905]);
    const nodes = await call(tokenA, 'GET', `/open-apis/wiki/v2/spaces/${docsA.refs.space}/nodes`);
    expect([nodes.status, nodes.body.code]).toEqual([400, 131001]);
    const blocks = await call(tokenA, 'GET', `/open-apis/docx/v1/documents/${docsA.refs.drive.docx}/blocks`);
    expect([blocks.status, blocks.body.code]).toEqual([500, 1500]);
  });
});
