import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileBytes, type DocsTenant } from '../../simulator/data/docs/index.js';
import { shortTokenOf } from '../../src/sinks/sink-driver.js';
import { openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { callCounter, configureDocs, runDocs } from '../sync/docs-helpers.js';
import { FAST, startRagflow } from './sink-fixture.js';

// The whole path under faults on both sides at once: 5 % of Lark's docs calls (listings, metas,
// content, revisions, file downloads) answer their family's internal error, and 5 % of RAGFlow's
// answers fail (before or after the call took effect). Over a first sync and a round of edits,
// renames, moves out of the space, deletions and new pages, the end state must be exact: one
// parsed RAGFlow document per live Lark document, with its bytes; and a run without faults
// afterwards finds nothing to do (no content call, no sink write), so nothing was missed either.

const TENANT = 'tenant-docs-faults';
const SEED = Number(process.env.DOCS_FAULT_SEED ?? 1208);

describe('5 % faults on the Lark side and the sink side together end exact', () => {
  let stack: Stack;
  let data: DocsTenant;
  let ragflow: Awaited<ReturnType<typeof startRagflow>>;

  beforeAll(async () => {
    stack = await startStack({
      encrypt: false,
      env: { ALLOW_PRIVATE_SINKS: '1' },
      start: { rateLimitScale: 20, sinkOptions: FAST },
      data: { enforceRateLimits: false },
    });
    await whenReady(stack);
    data = stack.data.docs(TENANT, { wikiDocuments: 40, wikiDepth: 3, largePages: 0, oversizePages: 0, teamFolders: 2, driveDepth: 1, driveDocuments: 12, archiveDocuments: 3, personalDocuments: 1 });
    await openTenant(stack, TENANT);
    ragflow = await startRagflow({ version: '0.27.0' });
    await stack.larksync.services.sinks.put(TENANT, 'kb', { type: 'ragflow', url: ragflow.url, apiKey: ragflow.apiKey, datasetId: ragflow.datasetId });
    await configureDocs(stack, TENANT, { sources: [{ wikiSpaceId: data.refs.space }, { folderToken: data.refs.teamFolder }], sinks: ['kb'] });
  }, 60_000);

  afterAll(async () => {
    await ragflow?.fake.stop();
    await stack?.stop();
  });

  const faultsOn = () => {
    stack.data.setDocsFaults({ rate: 0.05, seed: `lark:${SEED}` });
    ragflow.fake.randomFaults({ seed: SEED, rate: 0.05, when: 'mixed', kinds: ['unavailable', 'error', 'reset', 'bad_gateway'] });
  };
  const faultsOff = () => {
    stack.data.setDocsFaults(undefined);
    ragflow.fake.stopRandomFaults();
  };

  /** Runs until a run succeeds: one that ended partial (a document Lark kept failing) is followed by another, as the schedule would. */
  async function syncUntilClean(): Promise<number> {
    for (let runs = 1; runs <= 6; runs += 1) {
      const run = await runDocs(stack, TENANT, 120_000);
      if (run.status === 'succeeded') return runs;
    }
    throw new Error('no clean run in 6 tries under 5 % faults');
  }

  /** Every document delivered: no state row with work left, and the sink's cursor at the feed's end. */
  async function delivered(): Promise<void> {
    await waitFor(
      async () => {
        const res = await sql<{ open: number; behind: boolean }>`
          select (select count(*)::int from sink_documents
                   where tenant_key = ${TENANT} and sink_name = 'kb'
                     and (want_version > done_version or step <> 'idle' or cardinality(obsolete_ids) > 0)) as open,
                 exists (select 1 from docs_content d, sinks k
                          where k.tenant_key = ${TENANT} and k.name = 'kb' and d.tenant_key = k.tenant_key
                            and (d.change_xid, d.change_seq) > (k.cursor_xid, k.cursor_seq)) as behind`.execute(stack.db.db);
        return res.rows[0]!.open === 0 && !res.rows[0]!.behind;
      },
      90_000,
      'delivery settled',
    );
  }

  /** Differences between the live docs_content rows and the dataset (empty when exact). */
  async function differences(): Promise<string[]> {
    const rows = await sql<{ token: string; format: string; markdown: string | null }>`
      select token, format, markdown from docs_content where tenant_key = ${TENANT} and deleted_at is null`.execute(stack.db.db);
    const inSink = ragflow.fake.documents(ragflow.datasetId);
    const out: string[] = [];
    const byShort = new Map<string, typeof inSink>();
    for (const d of inSink) {
      const short = shortTokenOf(d.name) ?? `?${d.name}`;
      byShort.set(short, [...(byShort.get(short) ?? []), d]);
      if (d.status !== 'DONE') out.push(`${d.name}: ${d.status}`);
    }
    for (const r of rows.rows) {
      const copies = byShort.get(r.token.slice(-10)) ?? [];
      byShort.delete(r.token.slice(-10));
      if (copies.length !== 1) {
        out.push(`${r.token}: ${copies.length} sink documents`);
        continue;
      }
      const c = copies[0]!;
      const want = r.format === 'markdown' ? Buffer.from(r.markdown ?? '') : fileBytes(data.object(r.token)!);
      if (!c.content.equals(want)) out.push(`${r.token}: content differs`);
      if (c.metadata.lark_token !== r.token) out.push(`${r.token}: lark_token ${String(c.metadata.lark_token)}`);
    }
    for (const [short, docs] of byShort) out.push(`${docs.length} sink document(s) for no live Lark document (${short})`);
    return out;
  }

  it('first sync, a round of changes, then a clean run with nothing left to do', async () => {
    faultsOn();
    const firstRuns = await syncUntilClean();
    await delivered();
    const documents = (await sql<{ n: number }>`select count(*)::int as n from docs_content where tenant_key = ${TENANT} and deleted_at is null`.execute(stack.db.db)).rows[0]!.n;
    expect(documents).toBeGreaterThan(35);
    expect(await differences()).toEqual([]);

    // Edits, renames, moves out of the space, deletions and new pages, in the wiki and the folder.
    const nodes = data.refs.spaceNodes.map((t) => data.node(t)!).filter((n) => !n.origin && data.objTypeOf(n) === 'docx');
    for (const n of nodes.slice(0, 5)) data.edit(n.obj, { append: 'Edited under faults.' });
    for (const n of nodes.slice(5, 7)) data.rename(n.token, `${data.titleOf(n)} renamed`);
    // Moved to the space the app is not a member of: gone from the synced paths. Leaves only, so
    // no subtree goes with them.
    const leaves = nodes.slice(7).filter((n) => n.children.length === 0);
    for (const n of leaves.slice(0, 2)) data.move(n.token, { space: data.refs.privateSpace });
    for (const n of leaves.slice(2, 5)) data.delete(n.token);
    for (let i = 0; i < 3; i += 1) data.addDocument({ title: `New page ${i}`, in: { space: data.refs.space, parent: nodes[0]!.token } });
    data.addDocument({ title: 'New folder doc', in: { folder: data.refs.teamFolder } });
    data.edit(data.refs.drive.docx, { append: 'Drive edit under faults.' });

    const changeRuns = await syncUntilClean();
    await delivered();
    expect(await differences()).toEqual([]);
    const larkFaults = stack.data.docsFaultsInjected;
    const sinkFaults = ragflow.fake.calls.filter((c) => c.fault).length;
    expect(larkFaults).toBeGreaterThan(5);
    expect(sinkFaults).toBeGreaterThan(5);

    // Without faults, a run finds everything already right: nothing fetched, nothing written.
    faultsOff();
    const calls = callCounter(data);
    ragflow.fake.resetCounts();
    const clean = await runDocs(stack, TENANT);
    expect(clean.status).toBe('succeeded');
    await delivered();
    expect(calls.content()).toBe(0);
    expect(ragflow.fake.writes).toEqual({ uploads: 0, updates: 0, deletes: 0, parses: 0, stops: 0 });
    expect(await differences()).toEqual([]);
    console.log(`5 % faults on both sides: ${documents} documents; ${firstRuns} + ${changeRuns} runs; ${larkFaults} Lark faults and ${sinkFaults} RAGFlow faults answered; exact`);
  }, 240_000);
});
