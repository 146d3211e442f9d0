import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODULES } from '../../src/connectors/index.js';
import { runModuleHandler } from '../../src/events/module-events.js';
import type { Services } from '../../src/services.js';
import type { ModuleEventContext } from '../../src/sync/sync-module.js';
import { STORE_APP } from '../helpers/stack.js';
import { countingServices, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';

// Before a change event's handler runs, larksync needs the tenant (active?), its app (whose tokens
// the handler reads with) and its connector of the module (enabled? config?). At 200 events a
// second these reads were a fifth of the statements an event cost apart from the rows: they are
// one statement. So are an object's freshness check and the number of the read that follows.
describe("a change event handler's context", () => {
  let f: TokenFixture;
  let services: Services;
  let reads: string[];

  beforeAll(async () => {
    f = await startTokenFixture();
    await f.seedTicket();
    for (const t of ['t-on', 't-off', 't-none', 't-gone']) await f.installTenant(t);
    await f.services.connectors.put('t-on', 'contact', { enabled: true, config: {} }, 'store');
    await f.services.connectors.put('t-off', 'contact', { enabled: false, config: {} }, 'store');
    await f.services.connectors.put('t-gone', 'contact', { enabled: true, config: {} }, 'store');
    await f.services.tenants.uninstall('t-gone', STORE_APP.appId, null);
    ({ services, seen: reads } = countingServices(f, /"?(tenants|apps|connectors)"?\b/));
  });
  afterAll(async () => {
    await f?.stop();
  });

  const run = async (tenantKey: string, appId: string = STORE_APP.appId, handler?: (ctx: ModuleEventContext) => Promise<'processed' | 'ignored'>, receivedAt = new Date()) => {
    let ctx: ModuleEventContext | undefined;
    const outcome = await runModuleHandler(
      services,
      MODULES.contact!,
      async (_event, c) => {
        ctx = c;
        return handler ? handler(c) : 'processed';
      },
      {},
      { eventId: `e-${tenantKey}`, tenantKey, appId, pushedAt: new Date(), receivedAt },
    );
    return { outcome, ctx };
  };

  it("runs the handler with the connector's config and the app's kind for an active tenant, after one read (the events-in tests use its tokens)", async () => {
    reads.length = 0;
    const { outcome, ctx } = await run('t-on');
    expect(outcome).toBe('processed');
    expect(ctx?.appKind).toBe('store');
    expect(ctx?.config).toEqual(expect.any(Object));
    expect(reads).toHaveLength(1);
  });

  it('ignores the event, after one read, when the connector is disabled or missing, the tenant uninstalled or unknown, or another app pushed it', async () => {
    for (const [tenant, appId] of [['t-off'], ['t-none'], ['t-gone'], ['t-nobody'], ['t-on', 'cli_other']] as Array<[string, string?]>) {
      reads.length = 0;
      const { outcome, ctx } = await run(tenant, appId);
      expect(outcome, tenant).toBe('ignored');
      expect(ctx, tenant).toBeUndefined();
      expect(reads, tenant).toHaveLength(1);
    }
  });

  it('checks which objects an event still has to read and draws the read number in one statement; a newer applied mark makes an object stale', async () => {
    const keys = ['contact_users:ou_a', 'contact_users:ou_b'];
    const check = async (mark: number, apply?: string[], receivedAt?: Date) => {
      let got: { fresh: string[]; readSeq: string } | undefined;
      reads.length = 0;
      await run('t-on', STORE_APP.appId, async (ctx) => {
        got = await ctx.freshRead(keys, mark);
        if (apply) await ctx.apply({ readSeq: got.readSeq, marks: { keys: apply, mark } });
        return 'processed';
      }, receivedAt);
      return got!;
    };
    const counted = countingServices(f, /sync_read_seq|event_marks/);
    services = counted.services;
    const first = await check(2_000, ['contact_users:ou_a']);
    expect(first.fresh).toEqual(keys);
    // The check and the draw, then the mark's write.
    expect(counted.seen).toHaveLength(2);
    counted.seen.length = 0;
    const older = await check(1_000);
    expect(older.fresh).toEqual(['contact_users:ou_b']);
    expect(counted.seen).toHaveLength(1);
    expect(BigInt(older.readSeq)).toBeGreaterThan(BigInt(first.readSeq));
    // The same mark again (a redelivery, or a second change in Lark's time resolution) still reads,
    // unless the applied read started after the event was received (it shows the change already).
    expect((await check(2_000)).fresh).toEqual(keys);
    expect((await check(2_000, undefined, new Date(Date.now() - 60_000))).fresh).toEqual(['contact_users:ou_b']);
  });

  it('gathers the checks of handlers running at once into one statement, each with its own answer and read number', async () => {
    const counted = countingServices(f, /sync_read_seq/);
    services = counted.services;
    // An applied mark for ou_c at 5,000.
    await run('t-on', STORE_APP.appId, async (ctx) => {
      const got = await ctx.freshRead(['contact_users:ou_c'], 5_000);
      await ctx.apply({ readSeq: got.readSeq, marks: { keys: ['contact_users:ou_c'], mark: 5_000 } });
      return 'processed';
    });
    // Six handlers at once (a drain's tenants): older and newer events of ou_c, and other objects.
    const asks: Array<[string, number]> = [
      ['contact_users:ou_c', 4_000],
      ['contact_users:ou_c', 6_000],
      ['contact_users:ou_d', 1_000],
      ['contact_users:ou_c', 4_500],
      ['contact_users:ou_e', 1_000],
      ['contact_users:ou_c', 5_000],
    ];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    counted.seen.length = 0;
    const runs = asks.map(([key, mark]) =>
      run('t-on', STORE_APP.appId, async (ctx) => {
        // Every handler is resolved and waiting before any asks: they ask in the same turn.
        await gate;
        return (await ctx.freshRead([key], mark)).fresh.length > 0 ? 'processed' : 'ignored';
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    const answers = (await Promise.all(runs)).map((r) => r.outcome);
    expect(answers).toEqual(['ignored', 'processed', 'processed', 'ignored', 'processed', 'processed']);
    // One statement (six before, one per handler).
    expect(counted.seen).toHaveLength(1);

    // Each its own read number, and other tenants' marks are not this tenant's.
    const direct = await Promise.all([
      services.freshReads.check({ tenantKey: 't-on', keys: ['contact_users:ou_c'], mark: 4_000 }),
      services.freshReads.check({ tenantKey: 't-off', keys: ['contact_users:ou_c'], mark: 4_000 }),
      services.freshReads.check({ tenantKey: 't-on', keys: [], mark: 4_000 }),
    ]);
    expect(direct.map((d) => d.fresh)).toEqual([[], ['contact_users:ou_c'], []]);
    expect(new Set(direct.map((d) => d.seq)).size).toBe(3);
  });
});
