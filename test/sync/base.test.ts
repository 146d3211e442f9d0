import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { BitableRequest, BitableTenant } from '../../simulator/data/bitable/index.js';
import { parseBaseUrl } from '../../src/connectors/base/config.js';
import { SYNC_MODULES } from '../../src/connectors/index.js';
import { Pacer } from '../../src/sync/pacer.js';
import { SyncEngine, defaultEngineOptions } from '../../src/sync/engine/sync-engine.js';
import type { SyncModuleDef } from '../../src/sync/sync-module.js';
import type { SyncModuleName, SyncRunRow } from '../../src/sync/sync.tables.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { runToEnd as runShared } from '../helpers/runs.js';
import { waitFor } from '../helpers/wait.js';

const DAY = 86_400_000;
const MAIN = 'tenant-base-main';
const URLS = 'tenant-base-urls';
const BIG = 'tenant-base-big';
const RESUME = 'tenant-base-resume';

async function runToEnd(stack: Stack, tenant: string, mode: 'incremental' | 'full'): Promise<SyncRunRow> {
  return runShared(stack, tenant, 'base', mode);
}

interface RecordRow {
  record_key: string;
  partition: string;
  app_token: string;
  table_id: string;
  record_id: string;
  fields: Record<string, unknown>;
  created_by: unknown;
  created_time: Date | null;
  last_modified_by: unknown;
  last_modified_time: Date | null;
  change_seq: string;
  deleted_at: Date | null;
}

async function records(stack: Stack, tenant: string, partition: string): Promise<RecordRow[]> {
  const res = await sql<RecordRow>`
    select record_key, partition, app_token, table_id, record_id, fields, created_by, created_time, last_modified_by,
           last_modified_time, change_seq::text as change_seq, deleted_at
      from base_records where tenant_key = ${tenant} and partition = ${partition} order by record_key`.execute(stack.db.db);
  return res.rows;
}

async function record(stack: Stack, tenant: string, key: string): Promise<RecordRow | undefined> {
  const res = await sql<RecordRow>`
    select record_key, partition, app_token, table_id, record_id, fields, created_by, created_time, last_modified_by,
           last_modified_time, change_seq::text as change_seq, deleted_at
      from base_records where tenant_key = ${tenant} and record_key = ${key}`.execute(stack.db.db);
  return res.rows[0];
}

/** Highest change_seq in a partition, leaving some keys out: unchanged means nothing was rewritten. */
async function maxSeq(stack: Stack, tenant: string, partition: string, except: string[] = []): Promise<bigint> {
  const res = await sql<{ s: string | null }>`
    select max(change_seq)::text as s from base_records
     where tenant_key = ${tenant} and partition = ${partition} and not (record_key = any(${except}::text[]))`.execute(stack.db.db);
  return BigInt(res.rows[0]?.s ?? '0');
}

/** An attachment cell without the per-read signature the simulator adds to its links. */
const unsigned = (cell: unknown) =>
  (cell as Array<Record<string, unknown>>).map((a) => ({
    ...a,
    url: String(a.url).replace(/[?&]sig=\d+$/, ''),
    tmp_url: String(a.tmp_url).replace(/[?&]sig=\d+$/, ''),
  }));

/** Requests of one run: those made between two indexes of the simulator's request log. */
const since = (data: BitableTenant, from: number) => data.requests.slice(from);
const searchesOf = (reqs: BitableRequest[], tableId: string) => reqs.filter((r) => r.api === 'search' && r.tableId === tableId);
interface SentFilter {
  conjunction: string;
  conditions: Array<{ field_name: string; operator: string; value: string[] }>;
}
const filterOf = (r: BitableRequest) => (r.body as { filter?: SentFilter }).filter;

interface SearchData {
  items: Array<{ record_id: string; fields: Record<string, unknown> }>;
  total: number;
  has_more: boolean;
  page_token?: string;
}

describe('base module', () => {
  let stack: Stack;
  let main: BitableTenant;
  let projectsPartition: string;
  let ledgerPartition: string;

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    // This file tests what polling reads. Lark's change events (pushed by the simulator once
    // larksync subscribes) would apply the same changes between runs: test/events-in/ covers them.
    stack.sim.events.pause();
    // Ledger (no ModifiedTime field) is re-read whole by every run: one page keeps the file fast.
    main = stack.data.bitable(MAIN, { ledger: 150 });
    stack.data.bitable(URLS, { projects: 300 });
    stack.data.bitable(RESUME, { projects: 1600, ledger: 0 });
    for (const t of [MAIN, URLS, BIG, RESUME]) {
      await openTenant(stack, t);
    }
    const { appToken, projects, ledger } = main.refs.main;
    projectsPartition = `${appToken}:${projects}`;
    ledgerPartition = `${appToken}:${ledger}`;
    await stack.larksync.services.connectors.put(
      MAIN,
      'base',
      { enabled: true, config: { tables: [{ appToken, tableId: projects }, { appToken, tableId: ledger }] } },
      'store',
    );
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('a full run stores raw fields, automatic fields and the field schema, reading 500 records per page', async () => {
    const from = main.requests.length;
    const run = await runToEnd(stack, MAIN, 'full');
    expect(run.status).toBe('succeeded');
    const { appToken, projects: projectsId, ledger: ledgerId } = main.refs.main;
    const projects = main.table(appToken, projectsId);
    const ledger = main.table(appToken, ledgerId);

    const reqs = since(main, from);
    const searches = reqs.filter((r) => r.api === 'search');
    expect(searches.length).toBe(Math.ceil(projects.count / 500) + Math.ceil(ledger.count / 500));
    for (const s of searches) {
      expect(s.query.page_size).toBe('500');
      expect(s.body).toMatchObject({ automatic_fields: true });
      expect(filterOf(s)).toBeUndefined();
    }
    for (const f of reqs.filter((r) => r.api === 'fields')) expect(f.query.page_size).toBe('100');

    const rows = await records(stack, MAIN, projectsPartition);
    expect(rows.length).toBe(projects.count);
    expect((await records(stack, MAIN, ledgerPartition)).length).toBe(ledger.count);
    expect(run.counts.base_records).toBe(projects.count + ledger.count);

    // Each row carries Lark's `fields` object as sent (names and value shapes untouched) and the
    // automatic fields in their own columns.
    for (const i of [0, 1, 7, 100, projects.count - 1]) {
      const src = projects.nth(i)!;
      const row = rows.find((r) => r.record_id === src.record_id)!;
      expect(row.record_key).toBe(`${appToken}:${projectsId}:${src.record_id}`);
      expect(row.partition).toBe(projectsPartition);
      expect(row.fields).toEqual(src.fields);
      expect(row.created_by).toEqual(src.created_by);
      expect(row.last_modified_by).toEqual(src.last_modified_by);
      expect(row.created_time?.getTime()).toBe(src.created_time);
      expect(row.last_modified_time?.getTime()).toBe(src.last_modified_time);
    }
    const withMention = rows.find((r) => JSON.stringify(r.fields.Title).includes('"mention"'));
    expect(withMention).toBeDefined();
    const ledgerRow = (await records(stack, MAIN, ledgerPartition)).find((r) => r.fields.Receipt !== undefined);
    // Attachment links are signed afresh on every read; the rest of the cell is as stored upstream.
    expect(unsigned(ledgerRow?.fields.Receipt)).toEqual(ledger.get(ledgerRow!.record_id)!.fields.Receipt);

    // The schema, so readers can interpret the values.
    const fields = await sql<{ field_name: string; type: number; ui_type: string; is_primary: boolean; partition: string; record_key: string; raw: { field_id: string } }>`
      select field_name, type, ui_type, is_primary, partition, record_key, raw from base_fields
       where tenant_key = ${MAIN} and deleted_at is null order by field_name`.execute(stack.db.db);
    const projectFields = fields.rows.filter((f) => f.partition === projectsPartition);
    expect(projectFields.map((f) => f.field_name).sort()).toEqual(projects.fields.map((f) => f.field_name).sort());
    expect(projectFields.find((f) => f.is_primary)?.field_name).toBe('Title');
    expect(projectFields.find((f) => f.field_name === 'Modified')).toMatchObject({ type: 1002, ui_type: 'ModifiedTime' });
    expect(projectFields.find((f) => f.field_name === 'Score')).toMatchObject({ type: 20, ui_type: 'Formula' });
    for (const f of projectFields) expect(f.record_key).toBe(`${appToken}:${projectsId}:${f.raw.field_id}`);
    expect(fields.rows.filter((f) => f.partition === ledgerPartition).length).toBe(ledger.fields.length);
    // Every key of every stored `fields` object is a field of its table.
    const names = new Set(projects.fields.map((f) => f.field_name));
    expect(rows.every((r) => Object.keys(r.fields).every((k) => names.has(k)))).toBe(true);
  });

  it('incremental runs filter on the ModifiedTime field a day before the cursor day, pick up edits and rewrite nothing else', async () => {
    const { appToken, projects: projectsId, ledger: ledgerId } = main.refs.main;
    const projects = main.table(appToken, projectsId);
    const cursor = Math.max(...(await records(stack, MAIN, projectsPartition)).map((r) => r.last_modified_time!.getTime()));

    const edited = projects.nth(42)!;
    const seqBefore = await maxSeq(stack, MAIN, projectsPartition);
    const ledgerSeqBefore = await maxSeq(stack, MAIN, ledgerPartition);
    const rowBefore = (await record(stack, MAIN, `${appToken}:${projectsId}:${edited.record_id}`))!;
    const after = projects.edit(edited.record_id, { Status: edited.fields.Status === 'Done' ? 'Todo' : 'Done', Budget: null });

    const from = main.requests.length;
    const run = await runToEnd(stack, MAIN, 'incremental');
    expect(run.status).toBe('succeeded');
    const reqs = since(main, from);

    const projectSearches = searchesOf(reqs, projectsId);
    expect(projectSearches.length).toBe(1);
    const filter = filterOf(projectSearches[0]!);
    expect(filter).toEqual({
      conjunction: 'and',
      conditions: [{ field_name: 'Modified', operator: 'isGreater', value: ['ExactDate', String(Math.floor(cursor / DAY) * DAY - DAY)] }],
    });
    // ExactDate is cut to midnight: the value lies at least a whole day before the cursor.
    expect(Number(filter!.conditions[0]!.value[1])).toBeLessThanOrEqual(cursor - DAY);

    // Only the records of the overlap window were read (not the whole table)...
    const windowRecords = run.counts.base_records! - main.table(appToken, ledgerId).count;
    expect(windowRecords).toBeGreaterThanOrEqual(1);
    expect(windowRecords).toBeLessThan(projects.count / 4);
    // ...the edit arrived...
    const row = (await record(stack, MAIN, `${appToken}:${projectsId}:${edited.record_id}`))!;
    expect(row.fields).toEqual(after.fields);
    expect(row.fields.Budget).toBeUndefined();
    expect(row.last_modified_time?.getTime()).toBe(after.last_modified_time);
    expect(BigInt(row.change_seq)).toBeGreaterThan(BigInt(rowBefore.change_seq));
    // ...and every other row, overlap re-reads included, was left alone.
    expect(await maxSeq(stack, MAIN, projectsPartition, [row.record_key])).toBe(seqBefore);

    // A table without a ModifiedTime field is read whole each time; the content hash writes nothing.
    const ledgerSearches = searchesOf(reqs, ledgerId);
    expect(ledgerSearches.length).toBe(Math.ceil(main.table(appToken, ledgerId).count / 500));
    expect(ledgerSearches.every((s) => filterOf(s) === undefined)).toBe(true);
    expect(await maxSeq(stack, MAIN, ledgerPartition)).toBe(ledgerSeqBefore);

    // The cursor moved to the edit: the next window starts the day before the edit's day.
    const from2 = main.requests.length;
    const again = await runToEnd(stack, MAIN, 'incremental');
    expect(again.status).toBe('succeeded');
    const next = filterOf(searchesOf(since(main, from2), projectsId)[0]!);
    expect(next?.conditions[0]?.value).toEqual(['ExactDate', String(Math.floor(after.last_modified_time / DAY) * DAY - DAY)]);
    expect(await maxSeq(stack, MAIN, projectsPartition)).toBe(BigInt(row.change_seq));
  });

  it('a full run marks deleted records and fields (rows kept); an incremental run marks no records deleted', async () => {
    const { appToken, projects: projectsId, ledger: ledgerId } = main.refs.main;
    const projects = main.table(appToken, projectsId);
    const ledger = main.table(appToken, ledgerId);
    const goneProject = projects.nth(5)!.record_id;
    const goneLedger = ledger.nth(100)!.record_id;
    projects.delete(goneProject);
    ledger.delete(goneLedger);
    // A field removed from the table: the schema is listed whole and swept on every run.
    const websiteAt = projects.fields.findIndex((f) => f.field_name === 'Website');
    const [website] = projects.fields.splice(websiteAt, 1);

    const inc = await runToEnd(stack, MAIN, 'incremental');
    expect(inc.status).toBe('succeeded');
    expect((await record(stack, MAIN, `${projectsPartition}:${goneProject}`))?.deleted_at).toBeNull();
    expect((await record(stack, MAIN, `${ledgerPartition}:${goneLedger}`))?.deleted_at).toBeNull();
    const fieldDeletedAt = async () =>
      (
        await sql<{ deleted_at: Date | null }>`
          select deleted_at from base_fields where tenant_key = ${MAIN} and record_key = ${`${projectsPartition}:${website!.field_id}`}`.execute(stack.db.db)
      ).rows[0]?.deleted_at;
    // One field listing that misses a field makes it a candidate; the next complete one marks it.
    expect(await fieldDeletedAt()).toBeNull();

    const full = await runToEnd(stack, MAIN, 'full');
    expect(full.status).toBe('succeeded');
    expect(await fieldDeletedAt()).not.toBeNull();
    // Records: the two deleted ones were read back with batch_get, absent, and marked; the field too.
    expect(full.deletions_confirmed).toBe(3);
    const p = await record(stack, MAIN, `${projectsPartition}:${goneProject}`);
    const l = await record(stack, MAIN, `${ledgerPartition}:${goneLedger}`);
    expect(p?.deleted_at).not.toBeNull();
    expect(p?.fields).toBeTruthy();
    expect(l?.deleted_at).not.toBeNull();
    const live = await sql<{ n: number }>`
      select count(*)::int as n from base_records where tenant_key = ${MAIN} and partition = ${projectsPartition} and deleted_at is null`.execute(stack.db.db);
    expect(live.rows[0]?.n).toBe(projects.count);
  });

  it('an incomplete listing marks nothing deleted: over-counted total, or a deletion shifting offsets between pages', async () => {
    const { appToken, projects: projectsId } = main.refs.main;
    const projects = main.table(appToken, projectsId);
    const incompleteWarnings = (run: SyncRunRow) =>
      stack.logs.filter((l) => l.includes('base records listing incomplete') && l.includes(`"runId":"${run.id}"`) && l.includes(projectsPartition)).length;

    // 1. Lark reports one record more than it lists.
    const missing = projects.nth(10)!.record_id;
    projects.delete(missing);
    projects.totalSkew = 1;
    const from = main.requests.length;
    const skewed = await runToEnd(stack, MAIN, 'full');
    projects.totalSkew = 0;
    expect(skewed.status).toBe('succeeded');
    expect(searchesOf(since(main, from), projectsId).length).toBe(Math.ceil(projects.count / 500));
    expect((await record(stack, MAIN, `${projectsPartition}:${missing}`))?.deleted_at).toBeNull();
    expect(incompleteWarnings(skewed)).toBe(1);

    // 2. A record already read is deleted while the run is on its second page: every later record
    // moves back one place, so one record is never listed.
    const earlyGone = projects.nth(20)!.record_id;
    const skipped = projects.nth(500)!.record_id; // first of page 2 before the shift
    let pages = 0;
    stack.data.onPage = (api, who) => {
      if (api !== 'bitable.records.search' || who.tenantKey !== MAIN) return;
      pages += 1;
      if (pages === 2) projects.delete(earlyGone);
    };
    let shifted: SyncRunRow;
    try {
      shifted = await runToEnd(stack, MAIN, 'full');
      expect(shifted.status).toBe('succeeded');
    } finally {
      stack.data.onPage = undefined;
    }
    expect(pages).toBeGreaterThanOrEqual(2);
    expect(incompleteWarnings(shifted)).toBe(1);
    expect(projects.get(skipped)).toBeDefined();
    for (const id of [missing, earlyGone, skipped]) {
      expect((await record(stack, MAIN, `${projectsPartition}:${id}`))?.deleted_at, id).toBeNull();
    }

    // A clean full pass afterwards settles it.
    const clean = await runToEnd(stack, MAIN, 'full');
    expect(clean.status).toBe('succeeded');
    expect(incompleteWarnings(clean)).toBe(0);
    expect((await record(stack, MAIN, `${projectsPartition}:${missing}`))?.deleted_at).not.toBeNull();
    expect((await record(stack, MAIN, `${projectsPartition}:${earlyGone}`))?.deleted_at).not.toBeNull();
    expect((await record(stack, MAIN, `${projectsPartition}:${skipped}`))?.deleted_at).toBeNull();
  });

  it('Base answering its own throttle code (1254290, HTTP 200) is waited out', async () => {
    main.injectThrottle(2);
    const run = await runToEnd(stack, MAIN, 'incremental');
    expect(run.status).toBe('succeeded');
    expect(run.throttled_waits).toBeGreaterThanOrEqual(2);
  });

  it('takes Base URLs, resolving a wiki-hosted Base through get_node, and keeps to the view in the URL', async () => {
    const data = stack.data.bitable(URLS);
    const { main: m, wiki } = data.refs;
    const config = {
      tables: [
        { url: `https://acme.feishu.cn/base/${m.appToken}?table=${m.projects}&view=${m.openView}` },
        { url: `https://acme.larksuite.com/wiki/${wiki.nodeToken}?table=${wiki.tasks}` },
        // The same table again, by id and without the view: skipped, the first entry wins.
        { appToken: m.appToken, tableId: m.projects },
      ],
    };
    await stack.larksync.services.connectors.put(URLS, 'base', { enabled: true, config }, 'store');
    // The save queued the change-event subscriptions, which resolve the wiki node once too.
    await waitFor(
      async () => (await sql<{ n: number }>`select count(*)::int as n from graphile_worker.jobs where task_identifier = 'manage_subscriptions'`.execute(stack.db.db)).rows[0]!.n === 0,
      15_000,
      'subscriptions made',
    );
    const wikiCalls = stack.sim.count('/open-apis/wiki/v2/spaces/get_node');
    const from = data.requests.length;
    data.injectThrottle(1);
    const run = await runToEnd(stack, URLS, 'full');
    expect(run.status).toBe('succeeded');
    expect(stack.sim.count('/open-apis/wiki/v2/spaces/get_node')).toBe(wikiCalls + 1);

    const projects = data.table(m.appToken, m.projects);
    const open = Array.from({ length: projects.count }, (_, i) => projects.nth(i)!).filter((r) => r.fields.Done !== true);
    const projectRows = await records(stack, URLS, `${m.appToken}:${m.projects}`);
    expect(open.length).toBeLessThan(projects.count);
    expect(projectRows.map((r) => r.record_id).sort()).toEqual(open.map((r) => r.record_id).sort());
    expect(stack.logs.some((l) => l.includes('base table configured twice') && l.includes(`"runId":"${run.id}"`))).toBe(true);
    const tasks = data.table(wiki.appToken, wiki.tasks);
    const taskRows = await records(stack, URLS, `${wiki.appToken}:${wiki.tasks}`);
    expect(taskRows.length).toBe(tasks.count);
    expect(taskRows[0]?.app_token).toBe(wiki.appToken);
    expect(taskRows[0]?.fields).toEqual(tasks.get(taskRows[0]!.record_id)!.fields);

    // Incremental: the view is read whole with view_id (a filter would make Lark ignore it); the
    // wiki table filters on its own ModifiedTime field, whatever it is called.
    const edited = tasks.edit(tasks.nth(3)!.record_id, { Done: true });
    const from2 = data.requests.length;
    const inc = await runToEnd(stack, URLS, 'incremental');
    expect(inc.status).toBe('succeeded');
    const viewSearches = searchesOf(since(data, from2), m.projects);
    expect(viewSearches.length).toBeGreaterThan(0);
    for (const s of viewSearches) {
      expect(s.body).toMatchObject({ view_id: m.openView });
      expect(filterOf(s)).toBeUndefined();
    }
    const taskSearch = searchesOf(since(data, from2), wiki.tasks)[0]!;
    expect(filterOf(taskSearch)?.conditions[0]).toMatchObject({ field_name: 'Updated', operator: 'isGreater' });
    expect((await record(stack, URLS, `${wiki.appToken}:${wiki.tasks}:${edited.record_id}`))?.fields.Done).toBe(true);
    expect(since(data, from).filter((r) => r.api === 'search').every((r) => r.query.page_size === '500')).toBe(true);

    // A wiki page that is a document, not a Base: the run fails saying so.
    await stack.larksync.services.connectors.put(
      URLS,
      'base',
      { enabled: true, config: { tables: [{ url: `https://acme.feishu.cn/wiki/${data.refs.docNode}?table=${m.projects}` }] } },
      'store',
    );
    const bad = await runToEnd(stack, URLS, 'incremental');
    expect(bad.status).toBe('failed');
    expect(bad.error_class).toBe('invalid_config');
    expect(bad.error_message).toMatch(/tables\[0\]\.url .*docx, not a Base/);

    // An unknown wiki node: Lark's 131005 comes back naming the entry.
    await stack.larksync.services.connectors.put(
      URLS,
      'base',
      { enabled: true, config: { tables: [{ url: `https://acme.feishu.cn/wiki/wikcnNoSuchNode?table=${m.projects}` }] } },
      'store',
    );
    const missing = await runToEnd(stack, URLS, 'incremental');
    expect(missing.status).toBe('failed');
    expect(missing.error_message).toMatch(/tables\[0\]\.url \(wiki node wikcnNoSuchNode\).*131005/);
  });

  it('rejects bad configs with a message naming the field', async () => {
    const put = (config: unknown) =>
      stack.larksync.services.connectors.put(BIG, 'base', { enabled: true, config: config as Record<string, unknown> }, 'store');
    const app = 'bascnAbCdEf0123456789';
    await expect(put({})).rejects.toThrow(/^config\.tables: tables must list/);
    await expect(put({ tables: [] })).rejects.toThrow(/^config\.tables: tables must list 1 to 100 tables/);
    await expect(put({ tables: [{ appToken: app }] })).rejects.toThrow(
      /^config\.tables\.0: each table needs either both appToken and tableId .* or a url/,
    );
    await expect(put({ tables: [{ appToken: app, tableId: 'orders' }] })).rejects.toThrow(/^config\.tables\.0\.tableId: tableId must be a table id starting with "tbl"/);
    await expect(put({ tables: [{ appToken: 'https://x.feishu.cn/base/abc', tableId: 'tblAbc' }] })).rejects.toThrow(/^config\.tables\.0\.appToken: /);
    await expect(put({ tables: [{ appToken: app, tableId: 'tblAbc', viewId: 'grid' }] })).rejects.toThrow(/^config\.tables\.0\.viewId: /);
    await expect(put({ tables: [{ url: `https://example.com/base/${app}?table=tblAbc` }] })).rejects.toThrow(/^config\.tables\.0\.url: url must be a Base URL/);
    await expect(put({ tables: [{ url: `https://acme.feishu.cn/base/${app}` }] })).rejects.toThrow(/^config\.tables\.0\.url: /);
    await expect(put({ tables: [{ url: `https://acme.feishu.cn/base/${app}?table=tblAbc`, appToken: app }] })).rejects.toThrow(
      /^config\.tables\.0: each table needs either/,
    );
    await expect(put({ tables: [{ appToken: app, tableId: 'tblAbc', table: 'x' }] })).rejects.toThrow(/^config\.tables\.0\.table: a table entry is an object with only/);
    await expect(put({ tables: [{ appToken: app, tableId: 'tblAbc' }], extra: true })).rejects.toThrow(/^config\.extra: /);
    const okView = await put({ tables: [{ appToken: app, tableId: 'tblAbc', viewId: 'vewAbc' }, { url: `https://acme.larksuite.com/wiki/wikcnX?view=vewQ&table=tblAbc` }] });
    expect(okView.warnings.join(' ')).toMatch(/view/);
  });

  it('parses Base and wiki URLs of both brands', () => {
    expect(parseBaseUrl('https://acme.feishu.cn/base/bascnAbc123?table=tblXyz&view=vewQrs')).toEqual({
      kind: 'ids',
      appToken: 'bascnAbc123',
      tableId: 'tblXyz',
      viewId: 'vewQrs',
    });
    expect(parseBaseUrl('https://acme.sg.larksuite.com/wiki/wikcnNode1?from=x&table=tblXyz')).toEqual({
      kind: 'wiki',
      nodeToken: 'wikcnNode1',
      tableId: 'tblXyz',
      viewId: null,
    });
    expect(parseBaseUrl('http://acme.feishu.cn/base/bascnAbc123?table=tblXyz')).toBeUndefined();
    expect(parseBaseUrl('https://acme.feishu.cn/docx/doxcnAbc?table=tblXyz')).toBeUndefined();
    expect(parseBaseUrl('https://feishu.cn.evil.com/base/bascnAbc123?table=tblXyz')).toBeUndefined();
  });

  it('serves a million-record table lazily, any page on demand', async () => {
    const data = stack.data.bitable(BIG);
    const { appToken, events } = data.refs.big;
    const search = (pageToken?: string, pageSize = 500) =>
      stack.larksync.services.tokens.withTenantToken(BIG, async (token, baseUrl) => {
        const q = new URLSearchParams({ page_size: String(pageSize), ...(pageToken ? { page_token: pageToken } : {}) });
        const res = await fetch(`${baseUrl}/open-apis/bitable/v1/apps/${appToken}/tables/${events}/records/search?${q}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ automatic_fields: true }),
        });
        return { status: res.status, body: (await res.json()) as { code: number; data?: SearchData } };
      });
    const started = Date.now();
    const first = await search();
    expect(first.body.code).toBe(0);
    expect(first.body.data?.total).toBe(1_000_000);
    expect(first.body.data?.items.length).toBe(500);
    expect(first.body.data?.has_more).toBe(true);
    // The page token is an offset: jump near the end.
    const deep = await search(`pt_${Buffer.from(JSON.stringify({ o: 999_800 })).toString('base64url')}`);
    expect(deep.body.data?.items.length).toBe(200);
    expect(deep.body.data?.has_more).toBe(false);
    expect(deep.body.data?.items.at(-1)?.fields.Name).toEqual([{ type: 'text', text: 'Event 1000000' }]);
    expect(Date.now() - started).toBeLessThan(3_000);
    // Lark's maximum page size is enforced.
    const tooBig = await search(undefined, 501);
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.code).toBe(1254011);
  });

  it('a run continues from its last committed page when a new slice takes over', async () => {
    const data = stack.data.bitable(RESUME);
    const { appToken, projects } = data.refs.main;
    await stack.larksync.services.connectors.put(RESUME, 'base', { enabled: true, config: { tables: [{ appToken, tableId: projects }] } }, 'store');
    // Slices are driven by hand: the stack's worker stops, and an engine whose slice budget is
    // shorter than one (slowed) records page gives up after every page, so each slice resumes
    // from the checkpoint the previous one left, as a slice taking over a crashed run does.
    await stack.larksync.worker?.stop();
    const services = stack.larksync.services;
    const engine = new SyncEngine(services, SYNC_MODULES as Readonly<Record<SyncModuleName, SyncModuleDef>>, new Pacer(services.db, 20), {
      ...defaultEngineOptions,
      sliceMs: 60,
    });
    stack.sim.injectFault({ path: `/open-apis/bitable/v1/apps/${appToken}/tables/${projects}/records/search`, delayMs: 150, count: 100 });
    const { run } = await services.sync.trigger(RESUME, 'base', 'full', 'api');
    const from = data.requests.length;
    let slices = 0;
    let outcome = 'continue';
    while (outcome === 'continue' && slices < 100) {
      outcome = await engine.runSlice(run.id, run.lease_id!);
      slices += 1;
    }
    stack.sim.clearFaults();
    expect(outcome).toBe('succeeded');
    const done = (await services.sync.get(run.id))!;
    const table = data.table(appToken, projects);
    const pagesNeeded = Math.ceil(table.count / 500);
    expect(slices).toBeGreaterThanOrEqual(pagesNeeded);
    // Every records page was fetched exactly once.
    expect(searchesOf(since(data, from), projects).length).toBe(pagesNeeded);
    expect(done.counts.base_records).toBe(table.count);
    expect((await records(stack, RESUME, `${appToken}:${projects}`)).length).toBe(table.count);
  });
});
