import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/clock.js';
import { SyncService } from '../../src/sync/sync.service.js';
import { startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';

const MIN = 60_000;
// A fixed start on a whole minute, so the run is the same every time (phases are hashes).
const T0 = Date.UTC(2026, 10, 21, 6, 0, 0);
// 200 tenants (500 until 2026-12): slots are hashes of the keys on a fixed clock, so the outcome is
// the same every run, and the old rule would queue all 200 in one minute, twenty times the
// per-minute bound (3 x 200 / 60). Volume is the benchmarks' business.
const N = 200;

describe('scheduled syncs are spread over their interval (simulated clock)', () => {
  let f: TokenFixture;
  let clock: SimulatedClock;
  let sync: SyncService;
  const keys = Array.from({ length: N }, (_, i) => `tk-sched-${String(i).padStart(4, '0')}`);

  beforeAll(async () => {
    clock = new SimulatedClock(T0);
    f = await startTokenFixture({ clock });
    sync = new SyncService(f.db.db, clock);
    // A burst: every tenant installed and configured in the same minute.
    for (const k of keys) {
      await f.installTenant(k);
      await f.services.connectors.put(k, 'contact', { enabled: true, intervalMinutes: 60, config: {} }, 'store');
    }
  }, 120_000);
  afterAll(async () => {
    await f?.stop();
  });

  /** Finishes every queued run at once: only the scheduling is under test. */
  const finishQueued = () =>
    sql`update sync_runs set status = 'succeeded', started_at = created_at, finished_at = created_at where status = 'queued'`.execute(f.db.db);

  const runTimes = async (tenantKey: string) =>
    (await f.db.db.selectFrom('sync_runs').select('created_at').where('tenant_key', '=', tenantKey).orderBy('id').execute()).map(
      (r) => (r.created_at.getTime() - T0) / MIN,
    );

  it('after a burst of installs, every connector moves to its own minute of the hour and then runs exactly hourly', async () => {
    const perMinute: number[] = [];
    for (let m = 0; m < 4 * 60; m += 1) {
      clock.set(T0 + m * MIN);
      perMinute.push(await sync.scheduleDue({}));
      await finishQueued();
    }
    // A connector that never ran is due at once: the install burst queues everyone's first run.
    expect(perMinute[0]).toBe(N);
    // Then each connector runs at its own slot, so from the first minute on the hour is flat: the
    // old rule ("interval elapsed") queued all N again in one minute, every 61 minutes.
    const settled = perMinute.slice(1);
    const mean = N / 60;
    expect(Math.max(...settled)).toBeLessThanOrEqual(3 * mean);
    expect(settled.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(3 * N);
    // From the second run on, every connector runs exactly one interval after its previous run.
    for (const k of keys.slice(0, 50)) {
      const times = await runTimes(k);
      expect(times[0]).toBe(0);
      expect(times[1]).toBeGreaterThanOrEqual(1);
      expect(times[1]).toBeLessThanOrEqual(61);
      for (let i = 2; i < times.length; i += 1) expect(times[i]! - times[i - 1]!).toBe(60);
    }
  }, 120_000);

  it('a run still going at its slot is followed up when it ends, then the connector is back on its slot', async () => {
    // Two connectors are enough from here on; the others would only make each tick slower.
    await sql`update connectors set enabled = false where tenant_key not in (${keys[0]!}, ${keys[1]!})`.execute(f.db.db);
    const k = keys[0]!;
    const before = await runTimes(k);
    const slot = before.at(-1)! + 60;
    // The next run starts on its slot and is still running an hour later.
    let m = slot;
    clock.set(T0 + m * MIN);
    await sync.scheduleDue({});
    await sql`update sync_runs set status = 'running' where tenant_key = ${k} and status = 'queued'`.execute(f.db.db);
    await finishQueued();
    for (m = slot + 1; m <= slot + 70; m += 1) {
      clock.set(T0 + m * MIN);
      await sync.scheduleDue({});
      await finishQueued();
    }
    expect((await runTimes(k)).slice(before.length)).toEqual([slot]);
    // It ends 10 minutes after its next slot: followed up at once, then on its slot again.
    await sql`update sync_runs set status = 'succeeded' where tenant_key = ${k} and status = 'running'`.execute(f.db.db);
    for (m = slot + 71; m <= slot + 200; m += 1) {
      clock.set(T0 + m * MIN);
      await sync.scheduleDue({});
      await finishQueued();
    }
    expect((await runTimes(k)).slice(before.length)).toEqual([slot, slot + 71, slot + 120, slot + 180]);
  }, 120_000);

  it('a run triggered through the API does not move the slots', async () => {
    const k = keys[1]!;
    const before = await runTimes(k);
    const slot = before.at(-1)! + 60;
    let m = before.at(-1)! + 1;
    for (; m < slot - 10; m += 1) {
      clock.set(T0 + m * MIN);
      await sync.scheduleDue({});
      await finishQueued();
    }
    clock.set(T0 + m * MIN);
    await sync.trigger(k, 'contact', 'incremental', 'api');
    await finishQueued();
    for (m += 1; m <= slot + 60; m += 1) {
      clock.set(T0 + m * MIN);
      await sync.scheduleDue({});
      await finishQueued();
    }
    expect((await runTimes(k)).slice(before.length)).toEqual([slot - 10, slot, slot + 60]);
  }, 120_000);
});
