import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startWorker } from '../../src/worker/worker.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { spawnLarksync, type LarksyncProcess } from '../helpers/larksync-process.js';
import { waitFor } from '../helpers/wait.js';
import { configureDocs, live, records, runDocs } from './docs-helpers.js';

const KILLED = 'tenant-docs-killed';
const REFERENCE = 'tenant-docs-reference';
/** Both tenants get the same generated wiki (same seed). */
const SHAPE = { seed: 'docs-resume', wikiDocuments: 400, wikiDepth: 5, largePages: 0, oversizePages: 0, teamFolders: 1, driveDepth: 1, driveDocuments: 2, archiveDocuments: 2 };

describe('docs module: a run killed mid-walk resumes from its checkpoint', () => {
  let stack: Stack;
  const children: LarksyncProcess[] = [];

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 50 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    for (const t of [KILLED, REFERENCE]) {
      stack.data.docs(t, SHAPE);
      await openTenant(stack, t);
    }
  }, 60_000);

  afterAll(async () => {
    for (const c of children) await c.kill('SIGKILL');
    await stack?.stop();
  });

  it('a SIGKILL during the listing loses at most the pages in flight; the tables end equal to an uninterrupted run', async () => {
    const killedData = stack.data.docs(KILLED);
    const referenceData = stack.data.docs(REFERENCE);
    expect(killedData.refs.space).toBe(referenceData.refs.space);
    const space = killedData.refs.space;
    await configureDocs(stack, REFERENCE, { sources: [{ wikiSpaceId: space }] });
    await configureDocs(stack, KILLED, { sources: [{ wikiSpaceId: space }] });

    const reference = await runDocs(stack, REFERENCE);
    expect(reference.status).toBe('succeeded');
    const referenceListings = referenceData.count('wiki.nodes.list');

    // Only the child process works the queue; slow listings so the kill lands mid-walk.
    await stack.larksync.worker?.stop();
    const worker = await spawnLarksync(stack.env, 30_000, { start: { rateLimitScale: 50, workerPollInterval: 200 } });
    children.push(worker);
    stack.sim.injectFault({ path: `/open-apis/wiki/v2/spaces/${space}/nodes`, delayMs: 40, count: 1_000_000 });

    const { run } = await stack.larksync.services.sync.trigger(KILLED, 'docs', 'incremental', 'api');
    await waitFor(async () => ((await stack.larksync.services.sync.get(run.id))?.pages ?? 0) >= 15, 30_000, '15 pages');
    await worker.kill('SIGKILL');
    const atKill = await stack.larksync.services.sync.get(run.id);
    expect(atKill?.status).toBe('running');
    const phase = await sql<{ stream: string; done: boolean }>`
      select stream, (state->>'done')::boolean as done from stream_states where tenant_key = ${KILLED} and module = 'docs'`.execute(stack.db.db);
    // Killed while walking the wiki: the listing phase has a checkpoint and is not done.
    expect(phase.rows).toEqual([{ stream: 'docs_listing', done: false }]);
    stack.sim.clearFaults();

    const resumed = await startWorker(stack.larksync.services);
    try {
      const done = await waitFor(async () => {
        const r = await stack.larksync.services.sync.get(run.id);
        return r && ['succeeded', 'failed', 'partial'].includes(r.status) ? r : undefined;
      }, 90_000, 'completion');
      expect(done.status).toBe('succeeded');
      // It went on from the checkpoint: starting over would list every page committed before the kill again.
      const wasted = killedData.count('wiki.nodes.list') - referenceListings;
      expect(wasted).toBeLessThan(atKill?.pages ?? 0);
      console.log(`docs resume: killed at page ${atKill?.pages}; ${killedData.count('wiki.nodes.list')} listing calls vs ${referenceListings} uninterrupted`);

      // The same data but for the tenant's name in URLs and user ids.
      const strip = (m: Map<string, { data: Record<string, unknown> }>) =>
        JSON.parse(
          JSON.stringify([...m.values()].map((r): Record<string, unknown> => ({ ...r.data, first_seen_at: undefined, raw: undefined })).sort((x, y) => String(x.token).localeCompare(String(y.token))))
            .replaceAll(KILLED, 'T')
            .replaceAll(REFERENCE, 'T'),
        ) as unknown;
      const [a, b] = [await records(stack, KILLED, 'docs_content'), await records(stack, REFERENCE, 'docs_content')];
      expect(live(a).length).toBeGreaterThan(300);
      expect(strip(a)).toEqual(strip(b));
      expect(strip(await records(stack, KILLED, 'docs_nodes'))).toEqual(strip(await records(stack, REFERENCE, 'docs_nodes')));
    } finally {
      await resumed.stop();
    }
  }, 180_000);
});
