import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeededRandom } from '../helpers/seeded-random.js';
import { deleteDoc, differences, drain, larkToken, seedTenant, sinkFixture, startDify, startRagflow, writeDoc, type DocInput, type Fixture } from './sink-fixture.js';

// 5 % of the sink's answers fail (before or after the call took effect: a 503 page, its own
// internal error, a reset connection), over rounds of new, edited, renamed, moved-out and deleted
// pages. The end state must be exact: one sink document per live Lark page, with its content.
// Then parses that hang or fail: bounded restarts, then `failed` with the sink's reason.

let fx: Fixture;
beforeAll(async () => {
  fx = await sinkFixture();
});
afterAll(async () => {
  await fx.stop();
});

const SEED = Number(process.env.SINK_FAULT_SEED ?? 1207);

/** Three rounds of changes over 30 pages, every drain under random faults; returns calls per changed page. */
async function rounds(
  tenant: string,
  sink: { documents(): Array<{ id: string; name: string; content: Buffer; metadata: Record<string, unknown> }>; calls(): number; faults(): number },
  seed: number,
): Promise<{ callsPerChange: number; faults: number }> {
  const rnd = new SeededRandom(seed);
  const docs = new Map<string, DocInput>();
  let changes = 0;
  const exact = async () => {
    await drain(fx, tenant, 'kb', 50_000);
    const expected = [...docs.values()].map((d) => ({ token: d.token, title: d.title, body: Buffer.from(d.markdown ?? '') }));
    expect(differences(sink.documents(), expected)).toEqual([]);
  };
  for (let i = 0; i < 30; i += 1) {
    const d = { token: larkToken(), title: `Fault page ${i}`, markdown: `# ${i}\n${'lorem '.repeat(20 + i)}` };
    docs.set(d.token, d);
    await writeDoc(fx.db.db, tenant, d);
    changes += 1;
  }
  await exact();
  for (let round = 0; round < 2; round += 1) {
    for (const d of [...docs.values()]) {
      const r = rnd.next();
      if (r < 0.25) d.markdown = `${d.markdown}\nedit ${round}`;
      else if (r < 0.35) d.title = `${d.title} renamed ${round}`;
      else if (r < 0.45) d.path = `/elsewhere/${round}/${d.title}`;
      else if (r < 0.52) {
        await deleteDoc(fx.db.db, tenant, d.token);
        docs.delete(d.token);
        changes += 1;
        continue;
      } else continue;
      await writeDoc(fx.db.db, tenant, d);
      changes += 1;
    }
    for (let i = 0; i < 3; i += 1) {
      const d = { token: larkToken(), title: `Late page ${round}.${i}`, markdown: `late ${round} ${i}` };
      docs.set(d.token, d);
      await writeDoc(fx.db.db, tenant, d);
      changes += 1;
    }
    await exact();
  }
  return { callsPerChange: sink.calls() / changes, faults: sink.faults() };
}

describe('5 % random faults on the sink end exact', () => {
  it.each(['0.27.0', '0.24.0'])('RAGFlow v%s', async (version) => {
    const r = await startRagflow({ version });
    try {
      const tenant = `tk-faults-rf-${version.replace(/\./g, '')}`;
      await seedTenant(fx.db.db, tenant, ['kb']);
      await fx.sinks.put(tenant, 'kb', { type: 'ragflow', url: r.url, apiKey: r.apiKey, datasetId: r.datasetId });
      r.fake.randomFaults({ seed: SEED, rate: 0.05, when: 'mixed', kinds: ['unavailable', 'error', 'reset', 'bad_gateway'] });
      const out = await rounds(tenant, { documents: () => r.fake.documents(r.datasetId), calls: () => r.fake.count(), faults: () => r.fake.calls.filter((c) => c.fault).length }, SEED);
      console.log(`RAGFlow v${version} under 5 % faults: ${out.callsPerChange.toFixed(1)} calls per changed page, ${out.faults} faults answered`);
      expect(out.faults).toBeGreaterThan(5);
      for (const d of r.fake.documents(r.datasetId)) expect(d.status).toBe('DONE');
    } finally {
      await r.fake.stop();
    }
  });

  it('Dify', async () => {
    const dify = await startDify();
    try {
      const tenant = 'tk-faults-dify';
      await seedTenant(fx.db.db, tenant, ['kb']);
      await fx.sinks.put(tenant, 'kb', { type: 'dify', url: dify.url, apiKey: dify.apiKey, datasetId: dify.datasetId });
      dify.fake.randomFaults({ seed: SEED + 1, rate: 0.05, when: 'mixed', kinds: ['unavailable', 'error', 'reset', 'rate_limited'] });
      const out = await rounds(tenant, { documents: () => dify.fake.documents(dify.datasetId), calls: () => dify.fake.count(), faults: () => dify.fake.calls.filter((c) => c.fault).length }, SEED + 1);
      console.log(`Dify under 5 % faults: ${out.callsPerChange.toFixed(1)} calls per changed page, ${out.faults} faults answered`);
      expect(out.faults).toBeGreaterThan(5);
      for (const d of dify.fake.documents(dify.datasetId)) expect(d.status).toBe('available');
    } finally {
      await dify.fake.stop();
    }
  });
});

describe('RAGFlow parses that hang or fail', () => {
  const state = async (tenant: string, token: string) => (await fx.sinks.documents(tenant, 'kb', { limit: 100 })).documents.find((s) => s.larkToken === token)!;

  it('v0.27: a parse stuck RUNNING is stopped and restarted twice, then the page is failed (one document kept); a failed parse is retried and succeeds', async () => {
    const r = await startRagflow({ version: '0.27.0' });
    try {
      const tenant = 'tk-stuck-27';
      await seedTenant(fx.db.db, tenant, ['kb']);
      const stuck = { token: larkToken(), title: 'Stuck page', markdown: 'never parsed' };
      const flaky = { token: larkToken(), title: 'Flaky page', markdown: 'parsed the second time' };
      r.fake.hangParse({ name: /^Stuck page/, hangAt: 0.4 });
      r.fake.failParse({ name: /^Flaky page/, times: 1, message: 'simulated OCR failure' });
      await writeDoc(fx.db.db, tenant, stuck);
      await writeDoc(fx.db.db, tenant, flaky);
      await fx.sinks.put(tenant, 'kb', { type: 'ragflow', url: r.url, apiKey: r.apiKey, datasetId: r.datasetId });
      await drain(fx, tenant, 'kb');
      const s = await state(tenant, stuck.token);
      expect(s).toMatchObject({ status: 'failed', restarts: 2, pushedHash: null });
      expect(s.lastError).toMatch(/took longer than 2 s .*gave up after 2 restart/);
      expect(r.fake.writeLog.filter((w) => w.op === 'stop' && w.name.startsWith('Stuck page')).length).toBe(2);
      expect(r.fake.writeLog.filter((w) => w.op === 'parse' && w.name.startsWith('Stuck page')).length).toBe(3);
      expect(r.fake.findDocuments({ datasetId: r.datasetId, metadata: { lark_token: stuck.token } })).toHaveLength(1);
      const f = await state(tenant, flaky.token);
      expect(f).toMatchObject({ status: 'done', restarts: 0, sinkStatus: 'DONE' });
      expect(r.fake.writes.uploads).toBe(2);

      // A failed page is retried on its next change.
      r.fake.clearParseRules();
      stuck.markdown = 'parsed now';
      await writeDoc(fx.db.db, tenant, stuck);
      await drain(fx, tenant, 'kb');
      expect(await state(tenant, stuck.token)).toMatchObject({ status: 'done', restarts: 0 });
      expect(differences(r.fake.documents(r.datasetId), [stuck, flaky].map((d) => ({ token: d.token, title: d.title, body: Buffer.from(d.markdown) })))).toEqual([]);
    } finally {
      await r.fake.stop();
    }
  });

  it('v0.24: a parse stuck at progress 0 cannot be stopped there; it is uploaded again instead, and the old version keeps serving when the new one never parses', async () => {
    const r = await startRagflow({ version: '0.24.0' });
    try {
      const tenant = 'tk-stuck-24';
      await seedTenant(fx.db.db, tenant, ['kb']);
      const page = { token: larkToken(), title: 'Serving page', markdown: 'version 1' };
      await writeDoc(fx.db.db, tenant, page);
      await fx.sinks.put(tenant, 'kb', { type: 'ragflow', url: r.url, apiKey: r.apiKey, datasetId: r.datasetId });
      await drain(fx, tenant, 'kb');
      const v1 = await state(tenant, page.token);
      expect(v1.status).toBe('done');

      r.fake.hangParse({ name: /^Serving page/ }); // "Task is queued…" forever
      page.markdown = 'version 2';
      await writeDoc(fx.db.db, tenant, page);
      r.fake.resetCounts();
      await drain(fx, tenant, 'kb');
      const s = await state(tenant, page.token);
      expect(s).toMatchObject({ status: 'failed', restarts: 2, sinkDocumentId: v1.sinkDocumentId, pushedHash: v1.pushedHash });
      // Each restart: the stop refused (progress 0), the parse refused (running): deleted and uploaded again.
      expect(r.fake.writes.uploads).toBe(3);
      expect(r.fake.writes.deletes).toBe(3);
      const left = r.fake.documents(r.datasetId);
      expect(left).toHaveLength(1);
      expect(left[0]!.content.toString()).toBe('version 1');
    } finally {
      await r.fake.stop();
    }
  });
});
