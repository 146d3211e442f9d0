import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { SYNC_MODULES } from '../../src/connectors/index.js';
import { Pacer } from '../../src/sync/pacer.js';
import { SyncEngine, defaultEngineOptions, type EngineOptions } from '../../src/sync/engine/sync-engine.js';
import { definePhase, type SyncModuleDef } from '../../src/sync/sync-module.js';
import type { StreamRow } from '../../src/sync/streams.js';
import type { SyncModuleName, SyncRunRow } from '../../src/sync/sync.tables.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { finishedRun } from '../helpers/runs.js';
import { waitFor } from '../helpers/wait.js';

// The engine reads Base pages ahead of its commits. These tests pin down what must not change
// because of that: a checkpoint never runs ahead of the rows stored with it, and a page read
// ahead is never committed once the run is cancelled or its lease is lost, and two page
// transactions that overlap still commit in page order.

const RECORDS = 6_000; // 12 pages of 500

interface Snapshot {
  offset: number | null;
  rows: number;
}

/** The committed checkpoint's next-page offset and the rows stored, in one snapshot. */
async function snapshot(stack: Stack, tenant: string): Promise<Snapshot> {
  const res = await sql<{ state: { s: { table: { step: string; pageToken: string | null; recordPages: number } | null } } | null; rows: number }>`
    select (select state from stream_states where tenant_key = ${tenant} and module = 'base') as state,
           (select count(*)::int from base_records where tenant_key = ${tenant}) as rows`.execute(stack.db.db);
  const row = res.rows[0]!;
  const table = row.state?.s.table;
  if (!table || table.step !== 'records') return { offset: null, rows: row.rows };
  const token = table.pageToken;
  const offset = token ? (JSON.parse(Buffer.from(token.slice(3), 'base64url').toString('utf8')) as { o: number }).o : 0;
  return { offset, rows: row.rows };
}

async function seenPages(stack: Stack, runId: string): Promise<number> {
  const res = await sql<{ n: number }>`select count(*)::int as n from sync_seen_pages where run_id = ${runId}`.execute(stack.db.db);
  return res.rows[0]?.n ?? 0;
}

describe('reading ahead of commits (Base)', () => {
  let stack: Stack;
  let searchPath: string;
  const tenants = { checkpoint: 'tenant-ra-checkpoint', cancel: 'tenant-ra-cancel', lease: 'tenant-ra-lease', fail: 'tenant-ra-fail' };
  const OVERLAP = 'tenant-ra-overlap';

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 50 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    await openTenant(stack, OVERLAP);
    for (const t of Object.values(tenants)) {
      const data = stack.data.bitable(t, { events: RECORDS, projects: 0, ledger: 0, tasks: 0 });
      await openTenant(stack, t);
      const { appToken, events } = data.refs.big;
      await stack.larksync.services.connectors.put(t, 'base', { enabled: true, config: { tables: [{ appToken, tableId: events }] } }, 'store');
    }
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  beforeEach(() => {
    stack.sim.clearFaults();
    stack.data.onPage = undefined;
  });

  const slowSearches = (tenant: string, delayMs: number) => {
    const { appToken, events } = stack.data.bitable(tenant).refs.big;
    searchPath = `/open-apis/bitable/v1/apps/${appToken}/tables/${events}/records/search`;
    stack.sim.injectFault({ path: searchPath, delayMs, count: 1000 });
  };

  it('every committed checkpoint points exactly past the rows committed with it', async () => {
    const t = tenants.checkpoint;
    const seen: Snapshot[] = [];
    const checks: Array<Promise<void>> = [];
    stack.data.onPage = (api, who) => {
      if (api !== 'bitable.records.search' || who.tenantKey !== t) return;
      checks.push(snapshot(stack, t).then((s) => void seen.push(s)));
    };
    const { run } = await stack.larksync.services.sync.trigger(t, 'base', 'full', 'api');
    const done = await finishedRun(stack, run.id);
    await Promise.all(checks);
    expect(done.status).toBe('succeeded');
    expect(done.counts.base_records).toBe(RECORDS);
    // Taken while pages were being read ahead and committed: the stored offset always equals the
    // rows stored (a fresh table, 500 new rows per page), never more.
    const during = seen.filter((s) => s.offset !== null);
    expect(during.length).toBeGreaterThan(5);
    for (const s of during) expect(s.offset).toBe(s.rows);
  });

  it('a cancelled run commits none of the pages it had read ahead', async () => {
    const t = tenants.cancel;
    slowSearches(t, 120);
    const { run } = await stack.larksync.services.sync.trigger(t, 'base', 'full', 'api');
    await waitFor(async () => ((await stack.larksync.services.sync.get(run.id))?.pages ?? 0) >= 4, 15_000, 'four pages');
    const cancelled = await stack.larksync.services.sync.cancel(run.id);
    expect(cancelled?.status).toBe('cancelled');
    // Reads in flight at the cancel come back during this wait; none of them may be committed.
    await new Promise((r) => setTimeout(r, 800));
    const after = (await stack.larksync.services.sync.get(run.id))!;
    expect(after.pages).toBe(cancelled!.pages);
    const recordPages = after.pages - 1; // the first page is the field list
    const stored = await snapshot(stack, t);
    expect(stored.rows).toBe(recordPages * 500);
    expect(after.counts.base_records).toBe(stored.rows);
    expect(stored.offset).toBe(stored.rows);
    // More searches were made than pages committed: the run had read ahead when it was cancelled.
    expect(stack.sim.count(searchPath)).toBeGreaterThan(recordPages);
    // A cancelled run is over: its deletion bookkeeping goes.
    expect(await seenPages(stack, run.id)).toBe(0);
  });

  it('a failed read ahead fails the run only after the pages before it are committed', async () => {
    const t = tenants.fail;
    const { appToken, events } = stack.data.bitable(t).refs.big;
    const path = `/open-apis/bitable/v1/apps/${appToken}/tables/${events}/records/search`;
    // Searches 1-3 succeed (slowly, so that the fourth is read ahead); the fourth is refused.
    stack.sim.injectFault({ path, delayMs: 80, count: 3 });
    let served = 0;
    stack.data.onPage = (api, who) => {
      if (api !== 'bitable.records.search' || who.tenantKey !== t) return;
      served += 1;
      if (served === 3) stack.sim.injectFault({ path, status: 400, code: 99991672, msg: 'Access denied', count: 1 });
    };
    const { run } = await stack.larksync.services.sync.trigger(t, 'base', 'full', 'api');
    const done = await finishedRun(stack, run.id);
    expect(done.status).toBe('failed');
    expect(done.error_class).toBe('permission_denied');
    expect(done.counts.base_records).toBe(1_500);
    const stored = await snapshot(stack, t);
    expect(stored.rows).toBe(1_500);
    expect(stored.offset).toBe(1_500);
  });

  it('pages that share keys (an offset shift upstream) commit in order even with their transactions overlapping', async () => {
    // A phase of pages that repeat the previous page's last key with new content, as a listing
    // does when a record is added in front of the read position between two pages.
    const user = (n: number, page: number): StreamRow => ({ recordKey: `ou_${n}`, raw: { open_id: `ou_${n}`, name: `user ${n} of page ${page}` }, columns: { open_id: `ou_${n}`, name: `user ${n} of page ${page}` } });
    const pages = Array.from({ length: 12 }, (_, p) => Array.from({ length: 40 }, (_, i) => user(p * 39 + i, p)));
    const phase = definePhase<{ page: number }, unknown>({
      name: 'overlap_users',
      stateSchema: Type.Object({ page: Type.Integer() }),
      tracksDeletions: ['contact_users'],
      init: () => ({ page: 0 }),
      canReadAhead: () => true,
      async readPage(_ctx, state) {
        await new Promise((r) => setTimeout(r, 5));
        const done = state.page + 1 >= pages.length;
        return { rows: { contact_users: pages[state.page]! }, state: { page: state.page + 1 }, done, sweep: done ? [{ stream: 'contact_users', partition: '', confirmBy: 'relist' }] : undefined };
      },
    });
    const modules = { ...SYNC_MODULES, contact: { ...SYNC_MODULES.contact, precheck: undefined, phases: [phase] } } as Readonly<Record<SyncModuleName, SyncModuleDef>>;
    const services = stack.larksync.services;
    const engine = new SyncEngine(services, modules, new Pacer(services.db, 50), { ...defaultEngineOptions, readAhead: 2 });
    // A run row of its own, queued for no worker: this engine alone runs it.
    const run = await services.db
      .insertInto('sync_runs')
      .values({ tenant_key: OVERLAP, module: 'contact', mode: 'full', trigger: 'api', status: 'queued', lease_id: sql<string>`gen_random_uuid()`, counts: '{}' })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(await engine.runSlice(run.id, run.lease_id!)).toBe('succeeded');
    const rows = await sql<{ record_key: string; name: string; deleted_at: Date | null }>`
      select record_key, name, deleted_at from contact_users where tenant_key = ${OVERLAP}`.execute(stack.db.db);
    const expected = new Map<string, string>();
    for (const page of pages) for (const u of page) expected.set(u.recordKey, String(u.columns.name));
    expect(rows.rows.length).toBe(expected.size);
    // Every shared key holds the later page's content, and nothing was swept as unseen.
    for (const r of rows.rows) {
      expect(r.name).toBe(expected.get(r.record_key));
      expect(r.deleted_at).toBeNull();
    }
    const done = (await services.sync.get(run.id))!;
    expect(done.pages).toBe(pages.length);
    expect(done.counts.contact_users).toBe(pages.length * 40);
  });

  it('tells what follows a stream after each page that wrote rows has committed, with the streams it wrote', async () => {
    const committed: Array<{ streams: string[]; rowsThen: number }> = [];
    const checks: Array<Promise<void>> = [];
    const user = (n: number): StreamRow => ({ recordKey: `ou_told_${n}`, raw: { open_id: `ou_told_${n}` }, columns: { open_id: `ou_told_${n}`, name: `told ${n}` } });
    const phase = definePhase<{ page: number }, unknown>({
      name: 'told_users',
      stateSchema: Type.Object({ page: Type.Integer() }),
      init: () => ({ page: 0 }),
      canReadAhead: () => true,
      async readPage(_ctx, state) {
        // The second page writes nothing: it is not told.
        const rows = state.page === 1 ? [] : [user(state.page * 2), user(state.page * 2 + 1)];
        return { rows: { contact_users: rows }, state: { page: state.page + 1 }, done: state.page === 2 };
      },
    });
    const modules = { ...SYNC_MODULES, contact: { ...SYNC_MODULES.contact, precheck: undefined, phases: [phase] } } as Readonly<Record<SyncModuleName, SyncModuleDef>>;
    const services = stack.larksync.services;
    const count = async () => (await sql<{ n: number }>`select count(*)::int as n from contact_users where tenant_key = ${OVERLAP} and record_key like 'ou_told_%'`.execute(stack.db.db)).rows[0]!.n;
    const deps = {
      ...services,
      pageCommitted: (run: { id: string; module: string }, streams: string[]) => {
        // Told after the commit: the page's rows are there for whoever reads them now.
        checks.push(count().then((rowsThen) => void committed.push({ streams, rowsThen })));
      },
    };
    const engine = new SyncEngine(deps, modules, new Pacer(services.db, 50), { ...defaultEngineOptions, readAhead: 2 });
    const run = await services.db
      .insertInto('sync_runs')
      .values({ tenant_key: OVERLAP, module: 'contact', mode: 'full', trigger: 'api', status: 'queued', lease_id: sql<string>`gen_random_uuid()`, counts: '{}' })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(await engine.runSlice(run.id, run.lease_id!)).toBe('succeeded');
    await Promise.all(checks);
    expect(committed.map((c) => c.streams)).toEqual([['contact_users'], ['contact_users']]);
    expect(committed[0]!.rowsThen).toBeGreaterThanOrEqual(2);
    expect(committed[1]!.rowsThen).toBe(4);
  });

  it('a slice whose lease was taken over stops without committing its read-ahead; the new lease finishes the run', async () => {
    const t = tenants.lease;
    // Slices are driven by hand on a second engine; the stack's worker stays out of it (last test).
    const services = stack.larksync.services;
    const options: EngineOptions = { ...defaultEngineOptions, readAhead: 2 };
    const engine = new SyncEngine(services, SYNC_MODULES as Readonly<Record<SyncModuleName, SyncModuleDef>>, new Pacer(services.db, 50), options);
    await stack.larksync.worker?.stop();
    try {
      slowSearches(t, 100);
      const { run } = await services.sync.trigger(t, 'base', 'full', 'api');
      let newLease: string | undefined;
      let stolenAt: SyncRunRow | undefined;
      // The way resumeStaleRuns takes over a run: a new lease on the row.
      stack.data.onPage = (api, who) => {
        if (api !== 'bitable.records.search' || who.tenantKey !== t || newLease) return;
        newLease = 'pending';
        void (async () => {
          await waitFor(async () => ((await services.sync.get(run.id))?.pages ?? 0) >= 3, 10_000, 'three pages');
          const res = await sql<SyncRunRow>`update sync_runs set lease_id = gen_random_uuid() where id = ${run.id} returning *`.execute(stack.db.db);
          stolenAt = res.rows[0];
          newLease = stolenAt?.lease_id ?? undefined;
        })();
      };
      const outcome = await engine.runSlice(run.id, run.lease_id!);
      expect(outcome).toBe('aborted');
      stack.data.onPage = undefined;
      await new Promise((r) => setTimeout(r, 500));
      const afterAbort = (await services.sync.get(run.id))!;
      expect(afterAbort.status).toBe('running');
      // Nothing committed after the lease changed hands, and what is stored is consistent.
      expect(afterAbort.pages).toBe(stolenAt!.pages);
      const stored = await snapshot(stack, t);
      expect(stored.rows).toBe((afterAbort.pages - 1) * 500);
      expect(stored.offset).toBe(stored.rows);
      // The run is not over: the seen keys the new lease holder needs for its sweep are kept (those
      // of every records page; the fields page's were judged when the field listing ended).
      expect(await seenPages(stack, run.id)).toBe(afterAbort.pages - 1);

      stack.sim.clearFaults();
      let outcome2 = 'continue';
      for (let i = 0; outcome2 === 'continue' && i < 50; i += 1) outcome2 = await engine.runSlice(run.id, newLease!);
      expect(outcome2).toBe('succeeded');
      const done = (await services.sync.get(run.id))!;
      expect((await snapshot(stack, t)).rows).toBe(RECORDS);
      // Both slices' pages add up to the table exactly once: nothing was committed twice.
      expect(done.counts.base_records).toBe(RECORDS);
      const live = await sql<{ n: number }>`select count(*)::int as n from base_records where tenant_key = ${t} and deleted_at is null`.execute(stack.db.db);
      expect(live.rows[0]?.n).toBe(RECORDS);
    } finally {
      stack.sim.clearFaults();
      stack.data.onPage = undefined;
    }
  }, 60_000);
});
