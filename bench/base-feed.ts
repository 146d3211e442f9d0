/**
 * The cost of the feed guarantee (issue 9), part of `npm run bench -- base` (BENCH_BASE_MODES
 * `feed`): how fast a consumer walks BENCH_BASE_FEED_ROWS rows (default 1 000 000) of
 * `base_records` through the records API, `limit=1000`, following `nextCursor`, against a plain
 * keyset loop over the same rows in the same database:
 *
 *   select <the columns the API returns> from base_records
 *    where tenant_key = $1 and (change_xid, change_seq) > ($2, $3)
 *    order by change_xid, change_seq limit 1000
 *
 * which has no horizon, so it may skip rows of writes still open. Both walk while a Base sync
 * writes: larksync (its own process, the HTTP API and the worker, as `npm start` runs) syncs
 * another tenant's table from the simulator at Lark's documented search tier, started again
 * (its rows deleted first, so that it writes every row again) whenever it ends before the walks.
 * The walked tenant's rows are copies of the first synced rows (real Base payloads), inserted in
 * transactions of 50 000 rows and vacuumed before the walks start.
 *
 * The two walks alternate in slices of pages, each starting every other slice, so the machine's
 * drift and the sync's phases land on both; each side's time is the sum of its slices. Both
 * consumers live in the benchmark's process and end with the rows as JavaScript objects (the API
 * walk parses each response, the loop gets pg's parsed rows). Each walk must read every row once.
 */
import pg from 'pg';
import type { BenchChild } from './child-ipc.js';

export const FEED_PAGE = 1000;
/** rows per seeding transaction (the sync commits a page of 500 per transaction) */
const SEED_CHUNK = 50_000;
/** distinct synced rows the walked rows are copied from */
const TEMPLATE_ROWS = 5_000;

export interface FeedWalk {
  rows: number;
  pages: number;
  seconds: number;
}

export interface FeedResult {
  rows: number;
  api: FeedWalk;
  loop: FeedWalk;
  slices: number;
  seedSeconds: number;
  /** sync runs of the other tenant started in this mode (the last one cancelled at the end), and rows written during the walks */
  syncRuns: number;
  syncRowsDuringWalks: number;
}

interface Walker {
  walk: FeedWalk;
  done: boolean;
  /** reads up to `pages` more pages, adding the time they took to `walk.seconds` */
  step(pages: number): Promise<void>;
}

const COLUMNS = `record_key, deleted_at, updated_at, first_seen_at, raw, app_token, table_id, record_id, fields,
  created_by, created_time, last_modified_by, last_modified_time`;

/** The plain loop: keyset on the change position, no horizon. */
function loopWalker(client: pg.Client, tenant: string, total: number): Walker {
  let xid = '0';
  let seq = '0';
  const seen = new Set<string>();
  const w: Walker = {
    walk: { rows: 0, pages: 0, seconds: 0 },
    done: false,
    async step(pages) {
      const t0 = performance.now();
      for (let i = 0; i < pages && !w.done; i++) {
        const res = await client.query<{ record_key: string; x: string; s: string }>({
          name: 'feed-loop',
          text: `select ${COLUMNS}, change_xid::text as x, change_seq::text as s from base_records
                  where tenant_key = $1 and (change_xid, change_seq) > ($2::xid8, $3::bigint)
                  order by change_xid, change_seq limit ${FEED_PAGE}`,
          values: [tenant, xid, seq],
        });
        w.walk.pages += 1;
        for (const r of res.rows) seen.add(r.record_key);
        w.walk.rows += res.rows.length;
        const last = res.rows.at(-1);
        if (last) ({ x: xid, s: seq } = last);
        if (res.rows.length < FEED_PAGE || w.walk.rows >= total) w.done = true;
      }
      w.walk.seconds += (performance.now() - t0) / 1000;
      if (w.done && seen.size !== w.walk.rows) throw new Error(`feed loop: ${w.walk.rows} rows read, ${seen.size} distinct`);
    },
  };
  return w;
}

/** A consumer of the records API: follows nextCursor until it is null. */
function apiWalker(url: string, token: string, tenant: string): Walker {
  let cursor: string | null = null;
  const seen = new Set<string>();
  const w: Walker = {
    walk: { rows: 0, pages: 0, seconds: 0 },
    done: false,
    async step(pages) {
      const t0 = performance.now();
      for (let i = 0; i < pages && !w.done; i++) {
        const qs = `limit=${FEED_PAGE}${cursor ? `&cursor=${cursor}` : ''}`;
        const res = await fetch(`${url}/api/v1/tenants/${tenant}/streams/base_records/records?${qs}`, { headers: { authorization: `Bearer ${token}` } });
        if (res.status !== 200) throw new Error(`feed walk: ${res.status} ${await res.text()}`);
        const body = (await res.json()) as { records: Array<{ key: string }>; nextCursor: string | null };
        w.walk.pages += 1;
        for (const r of body.records) seen.add(r.key);
        w.walk.rows += body.records.length;
        cursor = body.nextCursor;
        if (!cursor) w.done = true;
      }
      w.walk.seconds += (performance.now() - t0) / 1000;
      if (w.done && seen.size !== w.walk.rows) throw new Error(`feed walk: ${w.walk.rows} rows read, ${seen.size} distinct`);
    },
  };
  return w;
}

/**
 * Copies the other tenant's first synced rows into `tenant` until it holds `rows` rows, one
 * transaction per SEED_CHUNK, as sync pages would have committed them (each transaction its own
 * change_xid, change_seq from the sequence). The template rows are taken first, into a temporary
 * table of this connection: the concurrent sync empties `from` between its runs, which (with a
 * sync short enough to finish while seeding) left later chunks copying nothing.
 */
async function seed(client: pg.Client, from: string, tenant: string, rows: number): Promise<void> {
  for (;;) {
    await waitForRows(client, from, TEMPLATE_ROWS);
    await client.query('drop table if exists feed_template');
    const taken = await client.query(
      `create temp table feed_template as
         select b.*, (row_number() over (order by record_key) - 1)::int as i
           from (select * from base_records where tenant_key = ${client.escapeLiteral(from)} order by record_key limit ${TEMPLATE_ROWS}) b`,
    );
    if (taken.rowCount === TEMPLATE_ROWS) break;
  }
  for (let start = 0; start < rows; start += SEED_CHUNK) {
    const n = Math.min(SEED_CHUNK, rows - start);
    const res = await client.query(
      `insert into base_records (tenant_key, record_key, partition, raw, content_hash, app_token, table_id, record_id, fields,
                                 created_by, created_time, last_modified_by, last_modified_time)
       select $1, t.record_key || '-' || g, t.partition, t.raw, t.content_hash, t.app_token, t.table_id, t.record_id || '-' || g, t.fields,
              t.created_by, t.created_time, t.last_modified_by, t.last_modified_time
         from generate_series($2::int, $3::int) g join feed_template t on t.i = g % $4
        order by g`,
      [tenant, start, start + n - 1, TEMPLATE_ROWS],
    );
    if (res.rowCount !== n) throw new Error(`feed: seeding copied ${res.rowCount} rows of ${n}`);
  }
  await client.query('drop table feed_template');
}

async function waitForRows(client: pg.Client, tenant: string, n: number): Promise<void> {
  for (;;) {
    const res = await client.query<{ n: number }>(`select count(*)::int as n from (select 1 from base_records where tenant_key = $1 limit $2) x`, [tenant, n]);
    if ((res.rows[0]?.n ?? 0) >= n) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Runs the two walks beside a sync of `syncTenant` (set up in `child`, which serves the API at
 * `apiUrl`). `walkTenant` must be installed and empty.
 */
export async function feedWalks(opts: {
  dbUrl: string;
  child: BenchChild;
  apiUrl: string;
  apiToken: string;
  syncTenant: string;
  walkTenant: string;
  rows: number;
}): Promise<FeedResult> {
  const { dbUrl, child, syncTenant, walkTenant, rows } = opts;
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  let walking = true;
  let syncRuns = 0;
  let syncFailure: Error | undefined;
  // The sync keeps writing until the walks end: a run that ends first is run again from scratch.
  const syncing = (async () => {
    while (walking) {
      syncRuns += 1;
      const run = await child.call<{ status: string; error: string | null }>('sync', { tenant: syncTenant, mode: 'full' });
      if (!walking && run.status === 'cancelled') break;
      if (run.status !== 'succeeded') throw new Error(`feed: the concurrent sync ${run.status}: ${run.error}`);
      if (walking) await client.query('delete from base_records where tenant_key = $1', [syncTenant]);
    }
  })().catch((err: Error) => {
    syncFailure = err;
  });
  try {
    await waitForRows(client, syncTenant, TEMPLATE_ROWS);
    const seed0 = performance.now();
    // Its own connection: the client above also deletes between sync runs.
    const seeder = new pg.Client({ connectionString: dbUrl });
    await seeder.connect();
    try {
      await seed(seeder, syncTenant, walkTenant, rows);
      await seeder.query('vacuum analyze base_records');
    } finally {
      await seeder.end();
    }
    const seedSeconds = (performance.now() - seed0) / 1000;
    const seq0 = await changeSeq(client);

    const loopClient = new pg.Client({ connectionString: dbUrl });
    await loopClient.connect();
    try {
      const api = apiWalker(opts.apiUrl, opts.apiToken, walkTenant);
      const loop = loopWalker(loopClient, walkTenant, rows);
      const totalPages = Math.ceil(rows / FEED_PAGE);
      const slicePages = Math.max(1, Math.ceil(totalPages / 10));
      let slices = 0;
      while (!api.done || !loop.done) {
        if (syncFailure) throw syncFailure;
        const order = slices % 2 === 0 ? [api, loop] : [loop, api];
        for (const w of order) if (!w.done) await w.step(slicePages);
        slices += 1;
      }
      const syncRowsDuringWalks = (await changeSeq(client)) - seq0;
      for (const [name, w] of [['API', api], ['loop', loop]] as const) {
        if (w.walk.rows !== rows) throw new Error(`feed: the ${name} walk read ${w.walk.rows} rows of ${rows}`);
      }
      return { rows, api: api.walk, loop: loop.walk, slices, seedSeconds, syncRuns, syncRowsDuringWalks };
    } finally {
      await loopClient.end();
    }
  } finally {
    walking = false;
    await child.call('cancel', { tenant: syncTenant });
    await syncing;
    await client.end();
  }
}

/** Row writes so far in the database (the change sequence's position; only the sync writes meanwhile). */
async function changeSeq(client: pg.Client): Promise<number> {
  const res = await client.query<{ n: string }>(`select last_value::text as n from sync_change_seq`);
  return Number(res.rows[0]?.n ?? 0);
}
