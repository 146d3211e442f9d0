import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { BitableTenant, SimTable } from '../../simulator/data/bitable/index.js';
import { textOf } from '../../simulator/data/bitable/table.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { spawnLarksync, type LarksyncProcess } from '../helpers/larksync-process.js';
import { FAST_RESUME } from '../helpers/worker-fleet.js';
import { SeededRandom, seedFromEnv } from '../helpers/seeded-random.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A large create through the write API while the larksync process applying it is SIGKILLed at
 * random points and started again, over repeated trials: every trial ends with exactly the
 * records sent, each once (the key field is unique), none lost, and the write succeeded.
 *
 * Each trial kills at least twice:
 * - once while Lark has applied a call but its answer has not come back (an injected 1255040
 *   held for a few seconds): the restarted process sends the call again with the same
 *   client_token and Lark answers it from the first time (a replay). Without the token the call
 *   would be applied twice;
 * - once or twice more at seeded random points (a fraction of the records in the table plus a
 *   jitter), so kills land mid-call, between a call and its commit, while planning, while reading
 *   back.
 * Lark also times out one call (1255040, answered at once) that the living process retries.
 *
 * WRITE_CRASH_RECORDS (default 20,000: two requests of 10,000) and WRITE_CRASH_TRIALS (default 3)
 * scale it up (100,000 records take about a minute a trial); WRITE_CRASH_SEED replays a seed.
 */
const RECORDS = Number(process.env.WRITE_CRASH_RECORDS?.trim() || 20_000);
const TRIALS = Number(process.env.WRITE_CRASH_TRIALS?.trim() || 3);
const SEED = seedFromEnv('WRITE_CRASH_SEED');
const TENANT = 'tenant-write-crash';
const PER_REQUEST = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SIGKILL during a large write into Base', () => {
  let stack: Stack;
  let bitable: BitableTenant;
  let appToken: string;
  let tableId: string;
  let proc: LarksyncProcess | undefined;
  const all: LarksyncProcess[] = [];
  const summary: string[] = [];

  const table = (): SimTable => bitable.table(appToken, tableId);
  const start = async () => {
    proc = await spawnLarksync(stack.env, 30_000, { start: FAST_RESUME });
    all.push(proc);
  };
  const kill = async () => {
    const p = proc;
    proc = undefined;
    await p?.kill('SIGKILL');
  };

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, data: { enforceRateLimits: false, bitableWrites: { latencyMs: 20 } } });
    await whenReady(stack);
    bitable = stack.data.bitable(TENANT, { projects: 5, ledger: 0, tasks: 0, events: 0, orders: 0 });
    await openTenant(stack, TENANT);
    ({ appToken, orders: tableId } = bitable.refs.main);
    // From here on only the child processes apply writes; this one only accepts them.
    await stack.larksync.worker?.stop();
    await start();
    console.log(`write crash: seed ${SEED}, ${TRIALS} trials of ${RECORDS} records (replay with WRITE_CRASH_SEED=${SEED})`);
  }, 60_000);

  afterAll(async () => {
    if (summary.length > 0) console.log(`write crash (seed ${SEED}):\n${summary.join('\n')}`);
    const warnings = all.flatMap((p) => p.output.join('').split('\n').filter((l) => /"level":(40|50|60)/.test(l)));
    if (warnings.length > 0) console.log(`write crash: warnings and errors of the processes:\n${warnings.slice(0, 30).join('\n')}`);
    await Promise.all(all.map((p) => p.kill('SIGKILL').catch(() => undefined)));
    await stack?.stop();
  });

  /** Rows of this trial in the simulator's table: how many, how many distinct keys. */
  const trialRows = (prefix: string) => {
    const t = table();
    const keys = new Set<string>();
    let rows = 0;
    for (let i = 0; i < t.count; i += 1) {
      const key = textOf(t.nth(i)?.fields.Order);
      if (!key?.startsWith(prefix)) continue;
      rows += 1;
      keys.add(key);
    }
    return { rows, keys };
  };

  it(`every trial ends with exactly the records sent, none doubled, none lost`, async () => {
    const rnd = new SeededRandom(SEED);
    const stats = bitable.writeStats(appToken);
    for (let trial = 1; trial <= TRIALS; trial += 1) {
      const prefix = `T${trial}-`;
      const trialStarted = Date.now();
      const before = table().count;
      const replaysBefore = stats.replays;
      const notes: string[] = [];
      // One timeout the living process retries with the same token.
      bitable.injectWriteFault({ code: 1255040, appToken, api: 'batch_create', count: 1 });
      const ids: string[] = [];
      for (let s = 0; s < RECORDS; s += PER_REQUEST) {
        const records = Array.from({ length: Math.min(PER_REQUEST, RECORDS - s) }, (_, j) => ({ fields: { Order: `${prefix}${s + j}`, Qty: (s + j) % 7 } }));
        const res = await stack.api('POST', `/api/v1/tenants/${TENANT}/writes`, { table: { appToken, tableId }, op: 'create', records });
        expect(res.status).toBe(202);
        ids.push(((await res.json()) as { id: string }).id);
      }
      const written = () => table().count - before;

      // Kill 1: Lark applied a call, its answer is held back; the process dies waiting for it.
      const heldAt = rnd.int(0, Math.floor(RECORDS / 1000) - 2) * 1000;
      await waitFor(() => written() >= heldAt, 60_000, `${heldAt} records written`);
      const timeoutsBefore = stats.timeouts;
      bitable.injectWriteFault({ code: 1255040, appToken, api: 'batch_create', count: 1, holdMs: 3_000 });
      await waitFor(() => stats.timeouts > timeoutsBefore, 30_000, 'the held call');
      await sleep(rnd.int(0, 200));
      const atHeld = written();
      await kill();
      await start();
      notes.push(`held answer at ${atHeld}`);

      // Kills 2 (and 3): at seeded random points of what is left.
      const kills = rnd.int(1, 2);
      for (let k = 0; k < kills; k += 1) {
        const target = Math.min(RECORDS - 1, Math.max(written() + 1, Math.round(rnd.next() * RECORDS)));
        const jitter = rnd.int(0, 150);
        const reached = await waitFor(async () => {
          if (written() >= target) return 'reached';
          const w = await stack.larksync.services.writes.get(ids[ids.length - 1]!, { records: false });
          return w && !['queued', 'running'].includes(w.status) ? 'finished' : undefined;
        }, 60_000, `${target} records written`);
        if (reached === 'finished') {
          notes.push('missed (the write finished)');
          break;
        }
        await sleep(jitter);
        notes.push(`kill at ${written()} (+${jitter} ms)`);
        await kill();
        await start();
      }

      for (const id of ids) {
        const w = await waitFor(async () => {
          const v = await stack.larksync.services.writes.get(id, { records: false });
          return v && !['queued', 'running'].includes(v.status) ? v : undefined;
        }, 90_000, `write ${id} to finish`);
        expect(w.status, `trial ${trial}: write ${id} ended ${w.status} (${JSON.stringify(w.error)})`).toBe('succeeded');
        expect(w.counts.ok).toBe(w.counts.total);
      }
      const { rows, keys } = trialRows(prefix);
      summary.push(`trial ${trial}: ${notes.join(', ')}; ${rows} rows, ${keys.size} keys, ${stats.replays - replaysBefore} replays; ${((Date.now() - trialStarted) / 1000).toFixed(1)} s`);
      // Exactly the records sent: none doubled, none lost.
      expect(rows, `trial ${trial}: rows in the table`).toBe(RECORDS);
      expect(keys.size, `trial ${trial}: distinct keys`).toBe(RECORDS);
      expect(table().count - before).toBe(RECORDS);
      // The held call and the timed-out one were sent again with their tokens and answered from the first time.
      expect(stats.replays - replaysBefore, `trial ${trial}: client_token replays`).toBeGreaterThanOrEqual(2);
      // The rows are read back into base_records (within seconds of the writes succeeding).
      const stored = await waitFor(async () => {
        const res = await sql<{ n: number }>`
          select count(*)::int as n from base_records where tenant_key = ${TENANT} and partition = ${`${appToken}:${tableId}`}
             and deleted_at is null and fields->'Order'->0->>'text' like ${`${prefix}%`}`.execute(stack.db.db);
        return res.rows[0]!.n === RECORDS ? res.rows[0]!.n : undefined;
      }, 60_000, 'the rows read back into base_records');
      expect(stored).toBe(RECORDS);
    }
    expect(stats.overlaps, 'write calls overlapping on the Base').toBe(0);
  }, 300_000);
});
