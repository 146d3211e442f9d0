import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileBytes } from '../../simulator/data/docs/index.js';
import { SecretSet, findLogLeaks } from '../helpers/secret-watch.js';
import type { Stack } from '../helpers/stack.js';
import { startStack, whenReady } from '../helpers/stack.js';
import { call, installStoreTenant, syncToEnd } from '../helpers/sync-api.js';
import { waitFor } from '../helpers/wait.js';
import { FAST, deleteDoc, differences, feedSinks, larkToken, startRagflow, writeDoc, type DocInput, type Expected } from './sink-fixture.js';

// A whole larksync (HTTP, worker, crons off) with a RAGFlow that goes down: the Lark side of the
// sync is not held up, deliveries back off (the sink's GET says why and until when), and resume
// where they stopped once RAGFlow is back, Drive files downloaded from Lark at delivery time.

const TENANT = 'tk-sink-down';

let stack: Stack;
let ragflow: Awaited<ReturnType<typeof startRagflow>>;

beforeAll(async () => {
  ragflow = await startRagflow({ version: '0.26.0' });
  stack = await startStack({
    data: { enforceRateLimits: false },
    env: { ALLOW_PRIVATE_SINKS: '1' },
    start: { rateLimitScale: 50, workerPollInterval: 100, sinkOptions: { ...FAST, backoffBaseMs: 300, backoffCapMs: 1_500 } },
  });
  await whenReady(stack);
  await installStoreTenant(stack, TENANT);
});
afterAll(async () => {
  await stack?.stop();
  await ragflow?.fake.stop();
});

/** The minute cron's work, now (crons are off in tests). */
const tick = () => stack.larksync.services.sinks.queueDue();

async function sinkView(): Promise<{ delivery: { state: string; failures: number; lastError: string | null; nextAttemptAt: string | null }; documents: { total: number; pending: number; delivering: number; done: number; failed: number; deleted: number } }> {
  return (await call<any>(stack, 'GET', `/api/v1/tenants/${TENANT}/sinks/kb`)).body;
}

describe('a sink that is down', () => {
  const docs = new Map<string, DocInput>();
  const expected = (): Expected[] =>
    [...docs.values()].map((d) => ({ token: d.token, title: d.title, body: d.file ? fileBytes(stack.data.docs(TENANT).object(d.file.token)!) : Buffer.from(d.markdown ?? '') }));

  it('delivers Markdown pages and a Drive file downloaded from Lark', async () => {
    const lark = stack.data.docs(TENANT, { wikiDocuments: 5, archiveDocuments: 0, driveDocuments: 2, largePages: 0, oversizePages: 0 });
    const pdf = lark.addDocument({ type: 'file', title: 'Quarterly report.pdf', in: { folder: lark.refs.appRoot }, ext: 'pdf' });
    const file: DocInput = {
      token: pdf.token,
      title: 'Quarterly report.pdf',
      file: { name: 'Quarterly report.pdf', mime: 'application/pdf', size: fileBytes(pdf).length, token: pdf.token },
      fileVersion: `rev-${pdf.revision}`,
    };
    docs.set(file.token, file);
    await writeDoc(stack.db.db, TENANT, file);
    for (let i = 0; i < 4; i += 1) {
      const d = { token: larkToken(), title: `Runbook ${i}`, markdown: `# Runbook ${i}\nstep ${i}` };
      docs.set(d.token, d);
      await writeDoc(stack.db.db, TENANT, d);
    }
    await feedSinks(stack.db.db, TENANT, ['kb']);
    const put = await call(stack, 'PUT', `/api/v1/tenants/${TENANT}/sinks/kb`, { type: 'ragflow', url: ragflow.url, apiKey: ragflow.apiKey, datasetId: ragflow.datasetId });
    expect(put.status).toBe(201);
    await waitFor(async () => (await sinkView()).documents.done === 5, 20_000, 'five documents delivered');
    expect(differences(ragflow.fake.documents(ragflow.datasetId), expected())).toEqual([]);
    const pdfDoc = ragflow.fake.findDocuments({ datasetId: ragflow.datasetId, metadata: { lark_token: pdf.token } })[0]!;
    expect(pdfDoc.name).toMatch(/^Quarterly report\.pdf \([A-Za-z0-9]{10}\)\.pdf$/);
    expect(lark.count('drive.files.download', { target: pdf.token })).toBe(1);
  });

  it('while RAGFlow is down the Lark-side sync still finishes; deliveries back off and say why', async () => {
    await ragflow.fake.down({ mode: 'refused' });
    const [first, second] = [...docs.values()].filter((d) => !d.file);
    first!.markdown = `${first!.markdown}\nchanged while down`;
    await writeDoc(stack.db.db, TENANT, first!);
    const added = { token: larkToken(), title: 'Written while down', markdown: 'queued' };
    docs.set(added.token, added);
    await writeDoc(stack.db.db, TENANT, added);
    await deleteDoc(stack.db.db, TENANT, second!.token);
    docs.delete(second!.token);
    await tick();

    // A Lark sync runs meanwhile and succeeds.
    expect((await call(stack, 'PUT', `/api/v1/tenants/${TENANT}/connectors/contact`, { enabled: true })).status).toBe(200);
    const run = await syncToEnd(stack, TENANT, 'contact');
    expect(run.status).toBe('succeeded');

    const backing = await waitFor(async () => {
      const v = await sinkView();
      return v.delivery.failures >= 2 ? v : undefined;
    }, 15_000, 'the delivery to back off twice');
    expect(backing.delivery.lastError).toMatch(/could not be reached/);
    expect(backing.delivery.lastError).not.toContain(ragflow.apiKey);
    expect(ragflow.fake.documents(ragflow.datasetId).map((d) => d.content.toString())).not.toContain('queued');
  });

  it('once RAGFlow is back, delivery resumes where it stopped and ends exact', async () => {
    await ragflow.fake.up();
    await tick();
    await waitFor(async () => {
      const v = await sinkView();
      return v.delivery.failures === 0 && v.documents.done === docs.size && v.documents.pending + v.documents.delivering === 0;
    }, 20_000, 'deliveries to resume');
    expect(differences(ragflow.fake.documents(ragflow.datasetId), expected())).toEqual([]);
    expect((await sinkView()).delivery).toMatchObject({ state: 'idle', lastError: null, nextAttemptAt: null });
    const secrets = new SecretSet();
    secrets.add('sink key', ragflow.apiKey);
    expect(findLogLeaks(stack.logs, secrets)).toEqual([]);
  });
});
