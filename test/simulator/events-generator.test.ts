import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LarkSimulator } from '../../simulator/lark-simulator.js';
import { startEventsSim, type EventsSim } from './events-setup.js';

// sim.events.generate(): data changes at a rate across tenants, each emitting its change events
// as a test edit does (the realtime benchmark runs 200/s over 100 tenants; this runs it small).

const APP = { appId: 'cli_ev_gen', kind: 'store' as const, encryptKey: 'gen-key-1' };
const TENANTS = ['tk-ev-gen-1', 'tk-ev-gen-2', 'tk-ev-gen-3', 'tk-ev-gen-4', 'tk-ev-gen-5'];

describe('simulator change generator', () => {
  let s: EventsSim;

  beforeAll(async () => {
    s = await startEventsSim([APP], TENANTS.map((t) => [APP.appId, t] as [string, string]));
    // Small data, so the first change in each tenant generates little.
    for (const t of TENANTS) {
      s.data.approval(t, { definitions: 2, instancesPerDay: 1, days: 3 });
      s.data.bitable(t, { projects: 10, ledger: 5, tasks: 5, events: 100, orders: 10 });
      s.data.docs(t, { wikiDocuments: 5, largePages: 0, oversizePages: 0, archiveDocuments: 2, privateSpaceDocuments: 1, driveDocuments: 4 });
    }
  });
  afterAll(async () => {
    await s.stop();
  });
  beforeEach(async () => {
    await s.sim.events.idle();
    s.receiver.clear();
    s.sim.events.resetCounters();
  });

  it('100 changes/s for a second over five tenants: every kind, every event delivered, signed and decryptable', async () => {
    const started = performance.now();
    const gen = s.sim.events.generate({ perSecond: 100, tenants: TENANTS, autoSubscribe: true, durationMs: 1_000, seed: 'test' });
    await gen.done;
    const elapsed = performance.now() - started;
    await s.sim.events.idle();
    expect(elapsed).toBeGreaterThanOrEqual(990);
    expect(gen.drawn).toBeGreaterThanOrEqual(90);
    expect(gen.drawn).toBeLessThanOrEqual(102);
    expect(gen.errors).toBe(0);
    expect(gen.changes).toBe(gen.drawn);
    expect(Object.values(gen.byKind).every((n) => n > 0)).toBe(true);

    const c = s.sim.events.counters;
    expect(c.emitted).toBeGreaterThanOrEqual(gen.changes);
    expect(c).toMatchObject({ delivered: c.emitted, failed: 0 });
    const got = s.receiver.acked();
    expect(got).toHaveLength(c.emitted);
    expect(got.every((p) => p.signatureOk)).toBe(true);
    const types = new Set(got.map((p) => p.type));
    for (const t of ['contact.user.updated_v3', 'approval_instance', 'approval_task', 'drive.file.bitable_record_changed_v1', 'drive.file.edit_v1']) expect(types).toContain(t);
    expect(new Set(got.map((p) => (p.schema === '2.0' ? p.body.header.tenant_key : p.event.tenant_key))).size).toBeGreaterThanOrEqual(4);
  });

  it('total: stops by itself after that many changes; kinds narrows what changes', async () => {
    const gen = s.sim.events.generate({ perSecond: 1_000, tenants: TENANTS.slice(0, 2), kinds: ['contact'], total: 40 });
    await gen.done;
    await s.sim.events.idle();
    expect(gen.drawn).toBe(40);
    expect(gen.byKind).toMatchObject({ approval: 0, bitable: 0, docs: 0 });
    expect(new Set(s.receiver.acked().map((p) => p.type.split('.')[0]))).toEqual(new Set(['contact']));
  });

  it('needs SimData', () => {
    expect(() => new LarkSimulator().events.generate({ perSecond: 1, tenants: ['t'] })).toThrow(/SimData/);
  });
});
