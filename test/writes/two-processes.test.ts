import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BitableTenant, SimTable } from '../../simulator/data/bitable/index.js';
import { textOf } from '../../simulator/data/bitable/table.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { spawnLarksync, type LarksyncProcess } from '../helpers/larksync-process.js';
import { FAST_RESUME } from '../helpers/worker-fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Two larksync processes (real OS processes, each with its HTTP API and its worker) accept writes
 * for the same Base at once: Lark never sees two write calls on the Base at a time, every record
 * is written exactly once, and writes are applied in the order they were accepted, whichever
 * process accepted them and whichever applies them.
 */
const TENANT = 'tenant-two-writers';

interface WriteJson {
  id: string;
  status: string;
  counts: { total: number; ok: number };
}

describe('two processes writing into one Base', () => {
  let stack: Stack;
  let bitable: BitableTenant;
  let appToken: string;
  let tableId: string;
  const procs: LarksyncProcess[] = [];

  const table = (): SimTable => bitable.table(appToken, tableId);

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, data: { enforceRateLimits: false, bitableWrites: { latencyMs: 30 } } });
    await whenReady(stack);
    bitable = stack.data.bitable(TENANT, { projects: 5, ledger: 0, tasks: 0, events: 0, orders: 3 });
    await openTenant(stack, TENANT);
    ({ appToken, orders: tableId } = bitable.refs.main);
    // Only the two child processes work the queue.
    await stack.larksync.worker?.stop();
    procs.push(...(await Promise.all([spawnLarksync(stack.env, 30_000, { start: FAST_RESUME }), spawnLarksync(stack.env, 30_000, { start: FAST_RESUME })])));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL').catch(() => undefined)));
    await stack?.stop();
  });

  const post = async (proc: LarksyncProcess, op: string, records: unknown[]): Promise<WriteJson> => {
    const res = await fetch(`${proc.url}/api/v1/tenants/${TENANT}/writes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.env.API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ table: { appToken, tableId }, op, records }),
    });
    expect(res.status).toBe(202);
    return (await res.json()) as WriteJson;
  };
  const finished = (id: string) =>
    waitFor(async () => {
      const w = await stack.larksync.services.writes.get(id, { records: false });
      return w && !['queued', 'running'].includes(w.status) ? w : undefined;
    }, 60_000, `write ${id}`);

  it('never overlaps on the Base, writes every record once, and keeps the order writes were accepted in', async () => {
    const [a, b] = procs as [LarksyncProcess, LarksyncProcess];
    const existing = table().nth(0)!.record_id;
    const stats = bitable.writeStats(appToken);
    const rowsBefore = table().count;

    // Bulk: each process gets 8 requests of 250 creates, all at once.
    const bulk = Promise.all(
      [a, b].flatMap((proc, p) =>
        Array.from({ length: 8 }, (_, r) =>
          post(proc, 'create', Array.from({ length: 250 }, (_, i) => ({ fields: { Order: `bulk-${p}-${r}-${i}`, Qty: i } }))),
        ),
      ),
    );

    // Ordered: chains of requests alternating between the processes, each sent once the one before
    // was accepted. Per key: an upsert that creates the record, then two that update it.
    const keys = Array.from({ length: 12 }, (_, i) => `ordered-${i}`);
    const upserts = Promise.all(
      keys.map(async (key, i) => {
        const ids: string[] = [];
        for (const [step, qty] of [1, 2, 3].entries()) {
          const proc = (i + step) % 2 === 0 ? a : b;
          ids.push((await post(proc, 'upsert', [{ match: { Order: key }, fields: { Qty: qty } }])).id);
        }
        return ids;
      }),
    );
    // And one existing record updated 10 times in a row, alternating processes.
    const updates = (async () => {
      const ids: string[] = [];
      for (let n = 1; n <= 10; n += 1) ids.push((await post(n % 2 ? a : b, 'update', [{ recordId: existing, fields: { Qty: 100 + n } }])).id);
      return ids;
    })();

    const all = [...(await bulk).map((w) => w.id), ...(await upserts).flat(), ...(await updates)];
    for (const id of all) expect((await finished(id)).status, `write ${id}`).toBe('succeeded');

    // One write call at a time on the Base, across both processes.
    expect(stats.overlaps).toBe(0);
    expect(stats.conflicts).toBe(0);
    expect(stats.maxInFlight).toBe(1);

    const byKey = new Map<string, Array<{ id: string; qty: unknown }>>();
    for (let i = 0; i < table().count; i += 1) {
      const r = table().nth(i)!;
      const key = textOf(r.fields.Order) ?? '';
      byKey.set(key, [...(byKey.get(key) ?? []), { id: r.record_id, qty: r.fields.Qty }]);
    }
    // Every bulk record exactly once.
    for (let p = 0; p < 2; p += 1) {
      for (let r = 0; r < 8; r += 1) {
        for (let i = 0; i < 250; i += 1) expect(byKey.get(`bulk-${p}-${r}-${i}`)?.length ?? 0, `bulk-${p}-${r}-${i}`).toBe(1);
      }
    }
    // Created by the first upsert, updated by the next two, in that order: one record, Qty 3.
    for (const key of keys) expect(byKey.get(key), key).toEqual([{ id: expect.any(String), qty: 3 }]);
    expect(table().count).toBe(rowsBefore + 2 * 8 * 250 + keys.length);
    // The existing record's updates reached Lark in the order they were accepted.
    const seen = bitable.requests
      .filter((q) => q.api === 'batch_update')
      .flatMap((q) => ((q.body as { records?: Array<{ record_id: string; fields: { Qty?: number } }> }).records ?? []).filter((r) => r.record_id === existing))
      .map((r) => r.fields.Qty);
    expect(seen).toEqual(Array.from({ length: 10 }, (_, n) => 101 + n));
    expect(table().get(existing)!.fields.Qty).toBe(110);
    console.log(`two writers: write calls ${stats.calls}`);
  }, 120_000);
});
