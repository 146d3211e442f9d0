import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { StreamName } from '../../src/sync/streams.js';
import { STREAM_CATALOG } from '../../src/connectors/index.js';
import type { SyncModuleName } from '../../src/sync/sync.tables.js';
import { startStack, type Stack, whenReady } from '../helpers/stack.js';
import { call, feedCaughtUp, getRun, type RunJson } from '../helpers/sync-api.js';
import { SeededRandom, seedFromEnv } from '../helpers/seeded-random.js';

/**
 * Property: however a client pages through the records feed (any page size from 1 to 1000, any
 * moment), while syncs of the same tenant write, taking each row's newest version from what the
 * walks saw gives exactly the table. Rounds start the change sequence just below a power of ten
 * (999, 99,999, 999,999), where a feed ordered by the text of its positions skipped rows, and
 * Base reads ahead, so two page transactions write at once and commit out of sequence order.
 *
 * FEED_ROUNDS (default 3) sets the rounds, FEED_SEED replays a printed seed.
 */
const TENANT = 'tenant-feed-walk';
const ROUNDS = Number(process.env.FEED_ROUNDS ?? 3);
const BOUNDARIES = [999, 99_999, 999_999, 9_999_999];
const MODULES: SyncModuleName[] = ['contact', 'approval', 'base', 'attendance'];
// The streams of the modules this test syncs (docs has its own walk tests: test/sync/docs*.test.ts).
const ALL_STREAMS: StreamName[] = STREAM_CATALOG.names().filter((s) => (MODULES as string[]).includes(STREAM_CATALOG.spec(s).module));

interface FeedRecord {
  key: string;
  deletedAt: string | null;
  data: { raw: unknown };
}
interface FeedPage {
  records: FeedRecord[];
  nextCursor: string | null;
  resumeCursor: string;
}

describe('records feed: walks never skip a row', () => {
  let stack: Stack;
  const seed = seedFromEnv('FEED_SEED');
  const rnd = new SeededRandom(seed);

  beforeAll(async () => {
    console.log(`feed walk: FEED_SEED=${seed} FEED_ROUNDS=${ROUNDS}`);
    stack = await startStack({
      encrypt: false,
      start: { rateLimitScale: 50, engineOptions: { readAhead: 2 } },
      // Walks page hard: the REST API's own per-client limit is not under test here.
      env: { API_RATE_LIMIT: '1000000' },
      data: { enforceRateLimits: false, contactShape: { topLevel: 3, childrenPerDepartment: 2, depth: 2, usersPerDepartment: 12, rootUsers: 3 } },
    });
    await whenReady(stack);
    // A custom app, so that attendance (custom apps only) syncs too: every stream gets rows.
    const app = { appId: 'cli_feed_walk', appSecret: 'secret-feed-walk' };
    stack.sim.addApp({ ...app, kind: 'custom', verificationToken: 'x', tenantKey: TENANT, tenantName: TENANT });
    stack.data.bitable(TENANT, { projects: 1600, ledger: 300, tasks: 25 });
    stack.data.approval(TENANT, { definitions: 2, instancesPerDay: 6, days: 4 });
    await stack.larksync.services.apps.registerCustomApp({ ...app, domain: stack.sim.url });
    const refs = stack.data.bitable(TENANT).refs;
    const put = (module: SyncModuleName, config: Record<string, unknown>) =>
      stack.larksync.services.connectors.put(TENANT, module, { enabled: true, config }, 'custom');
    await put('contact', {});
    await put('attendance', { lookbackDays: 3 });
    await put('approval', { approvalCodes: stack.data.approval(TENANT).codes(), backfillDays: 5, lookbackDays: 5 });
    await put('base', {
      tables: [
        { appToken: refs.main.appToken, tableId: refs.main.projects },
        { appToken: refs.main.appToken, tableId: refs.main.ledger },
        { url: `https://acme.feishu.cn/wiki/${refs.wiki.nodeToken}?table=${refs.wiki.tasks}` },
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  /** Changes upstream between rounds: renames, edits, deletions and additions in every module. */
  function churn(r: SeededRandom): void {
    const dir = stack.data.contact(TENANT);
    const users = [...dir.users.values()];
    for (const u of r.sample(users, 5)) u.name = `${u.name} r${r.int(0, 1e6)}`;
    const gone = r.pick(users.filter((u) => !u.department_ids.includes('0')));
    dir.users.delete(gone.open_id);

    const bitable = stack.data.bitable(TENANT);
    const { appToken, projects, ledger } = bitable.refs.main;
    const table = bitable.table(appToken, projects);
    for (let i = 0; i < 20; i += 1) {
      const rec = table.nth(r.int(0, table.count - 1));
      if (rec) table.edit(rec.record_id, { Budget: r.int(0, 100_000) / 100 });
    }
    const doomed = table.nth(r.int(0, table.count - 1));
    if (doomed) table.delete(doomed.record_id);
    table.add(r.int(1, 30));
    bitable.table(appToken, ledger).add(r.int(0, 5));

    const approval = stack.data.approval(TENANT);
    const codes = approval.codes();
    const recent = approval.codesBetween(Date.now() - 4 * 86_400_000, Date.now());
    for (const code of r.sample(recent, 4)) approval.setStatus(code, r.pick(['APPROVED', 'REJECTED', 'CANCELED'] as const));
    approval.addInstances(r.pick(codes), r.int(1, 4), Date.now() - 86_400_000, Date.now() - 60_000);
  }

  /** 1 to 1000, log-uniform: small pages are as likely as large ones, so page ends fall everywhere. */
  const pageSize = (r: SeededRandom) => Math.min(1000, Math.floor(Math.exp(r.next() * Math.log(1001))));

  async function page(stream: StreamName, cursor: string | undefined, limit: number): Promise<FeedPage> {
    const qs = new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) });
    const res = await call<FeedPage>(stack, 'GET', `/api/v1/tenants/${TENANT}/streams/${stream}/records?${qs}`);
    expect(res.status).toBe(200);
    return res.body;
  }

  /**
   * Walks one stream from `cursor` with random page sizes and pauses until `finished()` and the
   * walk reached the end after that; records each version seen. Returns the cursor to resume from.
   */
  async function walk(stream: StreamName, cursor: string | undefined, r: SeededRandom, seen: Map<string, FeedRecord>, finished: () => boolean): Promise<{ cursor: string | undefined; pages: number }> {
    let pages = 0;
    for (;;) {
      const done = finished();
      const p = await page(stream, cursor, pageSize(r));
      pages += 1;
      for (const rec of p.records) seen.set(rec.key, rec);
      cursor = p.resumeCursor;
      if (!p.nextCursor && done) return { cursor, pages };
      if (!p.nextCursor) await new Promise((res) => setTimeout(res, r.int(0, 30)));
    }
  }

  async function expectEqualsTable(stream: StreamName, seen: Map<string, FeedRecord>, label: string): Promise<void> {
    const rows = await sql<{ record_key: string; raw: unknown; deleted_at: Date | null }>`
      select record_key, raw, deleted_at from ${sql.table(stream)} where tenant_key = ${TENANT}`.execute(stack.db.db);
    expect(rows.rows.length, `${label}: ${stream} has rows`).toBeGreaterThan(0);
    const missing = rows.rows.filter((r) => !seen.has(r.record_key)).map((r) => r.record_key);
    expect(missing, `${label}: ${stream} rows never served`).toEqual([]);
    expect(seen.size, `${label}: ${stream} served keys not in the table`).toBe(rows.rows.length);
    for (const row of rows.rows) {
      const last = seen.get(row.record_key)!;
      expect(last.deletedAt, `${label}: ${stream} ${row.record_key} deletedAt`).toBe(row.deleted_at ? row.deleted_at.toISOString() : null);
      expect(last.data.raw, `${label}: ${stream} ${row.record_key} content`).toEqual(row.raw);
    }
  }

  it(`every walk, at random page sizes while ${MODULES.length} modules sync, ends equal to the table (${ROUNDS} rounds)`, async () => {
    // A follower keeps its cursor across rounds (follow changes forever); each round also has a
    // reader that starts from scratch (read everything once).
    const follower = new Map<StreamName, { cursor: string | undefined; seen: Map<string, FeedRecord> }>();
    for (const s of ALL_STREAMS) follower.set(s, { cursor: undefined, seen: new Map() });
    let totalPages = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      const r = rnd.fork(round);
      const boundary = BOUNDARIES[round % BOUNDARIES.length]!;
      if (round > 0) churn(r);
      // Positions cross the boundary while this round's walks are under way, hundreds of rows
      // below it and thousands above, many in the same transaction.
      await sql`select setval('sync_change_seq', ${boundary - r.int(100, 900)})`.execute(stack.db.db);
      const runs: RunJson[] = [];
      for (const module of MODULES) {
        const started = await call<RunJson>(stack, 'POST', `/api/v1/tenants/${TENANT}/syncs`, { module, mode: 'full' });
        expect(started.status, module).toBe(202);
        runs.push(started.body);
      }
      let over = false;
      const watcher = (async () => {
        for (;;) {
          const states = await Promise.all(runs.map((run) => getRun(stack, run.id)));
          if (states.every((s) => !['queued', 'running'].includes(s.status))) {
            for (const s of states) expect(s.status, `${s.module}: ${s.error?.message ?? ''}`).toBe('succeeded');
            // Walks end at the first empty page from here: the feed must have caught up first.
            await feedCaughtUp(stack, TENANT, ALL_STREAMS);
            over = true;
            return;
          }
          await new Promise((res) => setTimeout(res, 50));
        }
      })();
      const fresh = new Map<StreamName, Map<string, FeedRecord>>(ALL_STREAMS.map((s) => [s, new Map()]));
      const walks = ALL_STREAMS.flatMap((stream, i) => {
        const f = follower.get(stream)!;
        return [
          walk(stream, f.cursor, r.fork(100 + i), f.seen, () => over).then((w) => {
            f.cursor = w.cursor;
            totalPages += w.pages;
          }),
          walk(stream, undefined, r.fork(200 + i), fresh.get(stream)!, () => over).then((w) => {
            totalPages += w.pages;
          }),
        ];
      });
      await Promise.all([watcher, ...walks]);
      // And a reader that comes after the writes, reading everything once.
      const late = new Map<StreamName, Map<string, FeedRecord>>(ALL_STREAMS.map((s) => [s, new Map()]));
      await Promise.all(
        ALL_STREAMS.map(async (stream, i) => {
          totalPages += (await walk(stream, undefined, r.fork(300 + i), late.get(stream)!, () => true)).pages;
        }),
      );
      const position = await sql<{ s: string }>`select last_value::text as s from sync_change_seq`.execute(stack.db.db);
      expect(BigInt(position.rows[0]!.s), 'the sequence crossed the boundary').toBeGreaterThan(BigInt(boundary));
      for (const stream of ALL_STREAMS) {
        await expectEqualsTable(stream, follower.get(stream)!.seen, `round ${round} follower (FEED_SEED=${seed})`);
        await expectEqualsTable(stream, fresh.get(stream)!, `round ${round} fresh reader (FEED_SEED=${seed})`);
        await expectEqualsTable(stream, late.get(stream)!, `round ${round} late reader (FEED_SEED=${seed})`);
      }
    }
    console.log(`feed walk: ${ROUNDS} rounds, ${ALL_STREAMS.length * 3 * ROUNDS} walks, ${totalPages} pages`);
  }, 240_000);
});
