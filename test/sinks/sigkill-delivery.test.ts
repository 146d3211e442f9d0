import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Sealer } from '../../src/crypto/sealer.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { SinksService } from '../../src/sinks/sinks.service.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { SeededRandom, seedFromEnv } from '../helpers/seeded-random.js';
import { waitFor } from '../helpers/wait.js';
import { FAST_RESUME, WorkerFleet } from '../helpers/worker-fleet.js';
import { FAST, deleteDoc, differences, larkToken, seedTenant, startDify, startRagflow, writeDoc, type DocInput } from './sink-fixture.js';

// Real larksync worker processes deliver to a sink while the test SIGKILLs them at seeded random
// moments (mid-upload, mid-parse, mid-delete: calls to the sink are slowed so kills land inside
// them), and spawns replacements as an orchestrator would. After every round of changes the sink
// must hold exactly one document per live Lark page, with its current content. RAGFlow v0.24 is
// the dangerous one: an empty delete there would empty the dataset.

const SEED = seedFromEnv('SINK_CHAOS_SEED');
const ROUNDS = Number(process.env.SINK_CHAOS_ROUNDS ?? 2);

let db: TestDatabase;
let sinks: SinksService;
let env: Record<string, string>;
let sealer: Sealer;

beforeAll(async () => {
  db = await createTestDatabase();
  const key = randomBytes(32);
  env = {
    DATABASE_URL: db.url,
    ENCRYPTION_KEY: key.toString('base64'),
    API_TOKEN: 'api-token-for-sink-chaos-01',
    ALLOW_PRIVATE_SINKS: '1',
    HOST: '127.0.0.1',
  };
  // The test's own handle on the sinks (it only writes configuration and queues jobs).
  sealer = new Sealer(key);
  sinks = new SinksService({ db: db.db, sealer, log: pino({ level: 'silent' }), metrics: createMetrics(), download: async () => { throw new Error('no files here'); }, allowPrivate: true });
});
afterAll(async () => {
  await db?.drop();
});

async function settled(tenant: string, sinkName: string): Promise<boolean> {
  const res = await sql<{ open: number; behind: boolean }>`
    select (select count(*)::int from sink_documents
             where tenant_key = ${tenant} and sink_name = ${sinkName}
               and (want_version > done_version or step <> 'idle' or cardinality(obsolete_ids) > 0)) as open,
           exists (select 1 from docs_content d, sinks s
                    where s.tenant_key = ${tenant} and s.name = ${sinkName} and d.tenant_key = s.tenant_key
                      and (d.change_xid, d.change_seq) > (s.cursor_xid, s.cursor_seq)) as behind`.execute(db.db);
  return res.rows[0]!.open === 0 && !res.rows[0]!.behind;
}

interface Target {
  tenant: string;
  sink: string;
  documents(): Array<{ id: string; name: string; content: Buffer; metadata: Record<string, unknown> }>;
  uploads(): number;
  /** Completed create calls so far (kills are timed after them). */
  creates(): number;
  docs: Map<string, DocInput>;
}

/** Rounds of changes into every target at once, delivered by a fleet of two processes that keeps being SIGKILLed. */
async function chaos(targets: Target[], seed: number): Promise<{ kills: number; recovered: number; changes: number }> {
  const rnd = new SeededRandom(seed);
  const fleet = new WorkerFleet(env, db.db, 2, {
    ...FAST_RESUME,
    sinkOptions: { ...FAST, sliceMs: 3_000, backoffBaseMs: 200, backoffCapMs: 1_000 },
  });
  let kills = 0;
  let changes = 0;
  const t0 = Date.now();
  try {
    await fleet.fill();
    console.log(`fleet up at ${Date.now() - t0} ms`);
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const t of targets) {
        // New pages at first, then edits, renames and deletions too.
        const fresh = round === 0 ? 10 : 3;
        for (let i = 0; i < fresh; i += 1) {
          const d = { token: larkToken(), title: `Chaos ${round}.${i}`, markdown: `# ${round}.${i}\n${'x'.repeat(200 + i)}` };
          t.docs.set(d.token, d);
          await writeDoc(db.db, t.tenant, d);
          changes += 1;
        }
        if (round === 0) continue;
        for (const d of [...t.docs.values()]) {
          const r = rnd.next();
          if (r < 0.3) {
            d.markdown = `${d.markdown}\nround ${round}`;
            await writeDoc(db.db, t.tenant, d);
          } else if (r < 0.4) {
            d.title = `${d.title} r${round}`;
            await writeDoc(db.db, t.tenant, d);
          } else if (r < 0.5) {
            await deleteDoc(db.db, t.tenant, d.token);
            t.docs.delete(d.token);
          } else continue;
          changes += 1;
        }
      }
      await sinks.queueDue();
      // Two kills per round, each at a random moment after a few creates: many land inside one.
      for (let k = 0; k < 2; k += 1) {
        const base = targets.reduce((n, t) => n + t.creates(), 0);
        const after = rnd.int(1, 3);
        await waitFor(() => targets.reduce((n, t) => n + t.creates(), 0) >= base + after, 10_000, 'creates to kill into').catch(() => undefined);
        await new Promise((r) => setTimeout(r, rnd.int(0, 300)));
        // The replacements of earlier kills may still be starting (seconds under load; a round can
        // settle before they listen): every kill needs a live process, or the round kills fewer.
        void fleet.fill().catch(() => undefined);
        await waitFor(() => fleet.alive.length > 0, 30_000, 'a live process to kill').catch(() => undefined);
        const victim = fleet.alive[rnd.int(0, fleet.alive.length - 1)];
        if (victim) {
          await fleet.kill([victim]);
          kills += 1;
        }
        // The replacement starts in the background; the survivor goes on meanwhile.
        void fleet.fill().catch(() => undefined);
        await sinks.queueDue();
      }
      for (const t of targets) {
        await waitFor(async () => {
          // The minute cron's work, more often: jobs of killed workers come back after 3 s anyway.
          await sinks.queueDue();
          return settled(t.tenant, t.sink);
        }, 45_000, `round ${round} of ${t.sink} to settle`).catch((err: Error) => {
          throw new Error(`${err.message}\n${fleet.tail()}`);
        });
        const expected = [...t.docs.values()].map((d) => ({ token: d.token, title: d.title, body: Buffer.from(d.markdown ?? '') }));
        expect(differences(t.documents(), expected), `${t.sink} round ${round}, seed ${seed}`).toEqual([]);
      }
      console.log(`round ${round} exact at ${Date.now() - t0} ms`);
    }
    return { kills, recovered: fleet.logCount('recovered an interrupted upload'), changes };
  } finally {
    await fleet.stop();
  }
}

describe('SIGKILL during delivery', () => {
  it(`RAGFlow v0.24 and Dify: exactly one sink document per Lark page after every round (seed ${SEED})`, { timeout: 150_000 }, async () => {
    const r = await startRagflow({ version: '0.24.0', parseMs: 150 });
    const dify = await startDify({ indexMs: 150 });
    try {
      // Slow calls, and creates whose answer comes 250 ms after the document was stored: kills
      // land while a call is in flight, many of them after a create took effect unseen.
      r.fake.setLatency(15);
      r.fake.setAnswerDelay(250, 'documents.upload');
      dify.fake.setLatency(15);
      dify.fake.setAnswerDelay(250, 'documents.createByText');
      await seedTenant(db.db, 'tk-chaos-ragflow', ['kb'], sealer);
      await seedTenant(db.db, 'tk-chaos-dify', ['kb'], sealer);
      await sinks.put('tk-chaos-ragflow', 'kb', { type: 'ragflow', url: r.url, apiKey: r.apiKey, datasetId: r.datasetId });
      await sinks.put('tk-chaos-dify', 'kb', { type: 'dify', url: dify.url, apiKey: dify.apiKey, datasetId: dify.datasetId });
      const targets: Target[] = [
        { tenant: 'tk-chaos-ragflow', sink: 'kb', documents: () => r.fake.documents(r.datasetId), uploads: () => r.fake.writes.uploads, creates: () => r.fake.count('documents.upload'), docs: new Map() },
        { tenant: 'tk-chaos-dify', sink: 'kb', documents: () => dify.fake.documents(dify.datasetId), uploads: () => dify.fake.writes.uploads, creates: () => dify.fake.count('documents.createByText'), docs: new Map() },
      ];
      const out = await chaos(targets, SEED);
      console.log(
        `SIGKILL chaos (seed ${SEED}): ${out.kills} kills, ${out.recovered} interrupted creates recovered; ` +
          `RAGFlow ${r.fake.writes.uploads} uploads, Dify ${dify.fake.writes.uploads} creates, for ${out.changes} changes`,
      );
      expect(out.kills).toBe(ROUNDS * 2);
    } finally {
      await r.fake.stop();
      await dify.fake.stop();
    }
  });
});
