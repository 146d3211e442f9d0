import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DocsTenant } from '../../simulator/data/docs/index.js';
import { STORE_APP, openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { callCounter, configureDocs, runDocs } from '../sync/docs-helpers.js';
import { startRagflow } from '../sinks/sink-fixture.js';
import { eventStatuses, eventsSettled, row } from './helpers.js';

// Docs change events in (issue 14): edit events of a document the docs connector holds schedule a
// re-read of it, debounced per document (a burst of edits costs one content call), written to
// docs_content like a run's page; the knowledge-base sink then gets the new version, as after a
// docs run; a document moved to the trash is marked deleted once metas says it is gone.

const TENANT = 'tenant-ev-docs';

describe('docs change events in', () => {
  let stack: Stack;
  let data: DocsTenant;
  let ragflow: Awaited<ReturnType<typeof startRagflow>>;
  beforeAll(async () => {
    stack = await startStack({ env: { ALLOW_PRIVATE_SINKS: '1' }, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    data = stack.data.docs(TENANT, { wikiDocuments: 6, wikiDepth: 2, largePages: 0, oversizePages: 0, teamFolders: 1, driveDepth: 1, driveDocuments: 1, archiveDocuments: 0, personalDocuments: 0 });
    await openTenant(stack, TENANT);
    ragflow = await startRagflow();
    await stack.larksync.services.sinks.put(TENANT, 'kb', { type: 'ragflow', url: ragflow.url, apiKey: ragflow.apiKey, datasetId: ragflow.datasetId, enabled: true });
    await configureDocs(stack, TENANT, { sources: [{ wikiSpaceId: data.refs.space }], sinks: ['kb'] });
    expect((await runDocs(stack, TENANT)).status).toBe('succeeded');
    // Subscribing is another part's work (subscription management): here the simulator is told directly.
    stack.sim.events.subscriptions.subscribeFile(STORE_APP.appId, TENANT, data.refs.wikiDoc.document, 'docx');
    stack.sim.events.setOptions({ ownerOnlyFileEvents: false });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    await ragflow?.fake.stop();
  });
  beforeEach(async () => {
    await eventsSettled(stack);
  });

  const sinkDoc = async (token: string) =>
    (await stack.larksync.services.sinks.documents(TENANT, 'kb', { limit: 1000 })).documents.find((d) => d.larkToken === token);

  it('a burst of edits: one debounced re-read (one content call), the row and then the sink follow', { timeout: 60_000 }, async () => {
    const doc = data.refs.wikiDoc.document;
    await waitFor(async () => (await sinkDoc(doc))?.status === 'done', 20_000, 'first delivery').catch(async (err) => {
      console.log(JSON.stringify((await stack.larksync.services.sinks.documents(TENANT, 'kb', { limit: 1000 })).documents.slice(0, 3)));
      console.log(JSON.stringify(await stack.larksync.services.sinks.get(TENANT, 'kb')));
      throw err;
    });
    const calls = callCounter(data);
    data.edit(doc, { append: 'Event edit one.' });
    data.edit(doc, { append: 'Event edit two.' });
    data.edit(doc, { append: 'Event edit three.' });
    const fresh = await waitFor(async () => {
      const r = await row(stack, 'docs_content', TENANT, doc);
      return String(r?.markdown ?? '').includes('Event edit three.') ? r : undefined;
    }, 15_000, 'the re-read document');
    expect(fresh.revision).toBe(data.object(doc)!.revision);
    expect(calls.count('docs.content', doc)).toBe(1);
    expect(calls.count('drive.metas.batch_query')).toBe(1);
    expect(await eventStatuses(stack, 'drive.file.edit_v1')).toEqual(['processed', 'processed', 'processed']);
    // The sink gets the new version without a docs run.
    await waitFor(async () => {
      const s = await sinkDoc(doc);
      return s?.status === 'done' && s.pushedHash === fresh.body_hash;
    }, 30_000, 'the sink holding the new version');
  });

  it('moved to the trash: the re-read finds it gone and marks it deleted', async () => {
    const doc = data.refs.wikiDoc.document;
    data.delete(doc);
    await waitFor(async () => (await row(stack, 'docs_content', TENANT, doc))?.deleted_at, 15_000, 'document marked deleted');
  });
});
