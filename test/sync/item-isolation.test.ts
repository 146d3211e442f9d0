import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { runToEnd } from '../helpers/runs.js';
import { call, type RunJson } from '../helpers/sync-api.js';

const PARTIAL = 'tenant-items-partial';
const ALL_DENIED = 'tenant-items-denied';
const POISON = 'tenant-items-poison';
const ATTACH = 'tenant-items-attach';

interface BaseRow {
  record_id: string;
  fields: Record<string, unknown>;
  deleted_at: Date | null;
}

describe('one failing item does not fail the run; one poison value does not fail a page', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 20 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    stack.data.bitable(PARTIAL, { projects: 700, ledger: 40, tasks: 30 });
    stack.data.bitable(ALL_DENIED, { projects: 10, ledger: 10 });
    stack.data.bitable(POISON, { projects: 50, ledger: 0 });
    stack.data.bitable(ATTACH, { projects: 0, ledger: 400 });
    for (const t of [PARTIAL, ALL_DENIED, POISON, ATTACH]) await openTenant(stack, t);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const rowsOf = async (tenant: string, appToken: string, tableId: string) =>
    (
      await sql<BaseRow>`
        select record_id, fields, deleted_at from base_records
         where tenant_key = ${tenant} and partition = ${`${appToken}:${tableId}`} order by record_id`.execute(stack.db.db)
    ).rows;

  it('a Base table the app may not read, beside two it may: the run ends partial, the readable tables are exact, the item error names the table and the fix', async () => {
    const data = stack.data.bitable(PARTIAL);
    const { main, wiki } = data.refs;
    data.table(main.appToken, main.ledger).denied = true;
    await stack.larksync.services.connectors.put(
      PARTIAL,
      'base',
      {
        enabled: true,
        config: {
          tables: [
            { appToken: main.appToken, tableId: main.projects },
            { appToken: main.appToken, tableId: main.ledger },
            { url: `https://acme.feishu.cn/wiki/${wiki.nodeToken}?table=${wiki.tasks}` },
          ],
        },
      },
      'store',
    );
    const started = await call<RunJson>(stack, 'POST', `/api/v1/tenants/${PARTIAL}/syncs`, { module: 'base', mode: 'full' });
    const run = await runToEnd(stack, PARTIAL, 'base', 'full');
    expect(run.id).toBe(started.body.id);
    expect(run.status).toBe('partial');
    expect(run.error_class).toBeNull();
    expect(run.item_errors).toEqual([
      {
        item: 'base_table',
        id: `${main.appToken}/${main.ledger}`,
        errorClass: 'permission_denied',
        message: expect.stringMatching(/91403.*add the app to this Base as a collaborator.*Add document app/),
      },
    ]);
    // Both readable tables, before and after the denied one, are exact.
    for (const [appToken, tableId] of [
      [main.appToken, main.projects],
      [wiki.appToken, wiki.tasks],
    ] as const) {
      const table = data.table(appToken, tableId);
      const rows = await rowsOf(PARTIAL, appToken, tableId);
      expect(rows.length).toBe(table.count);
      for (const r of rows) expect(r.fields).toEqual(table.get(r.record_id)!.fields);
    }
    expect(await rowsOf(PARTIAL, main.appToken, main.ledger)).toEqual([]);

    // The API shows it, and a scheduled full pass counts as done (no repeat every minute).
    const view = await call<RunJson>(stack, 'GET', `/api/v1/syncs/${run.id}`);
    expect(view.body.status).toBe('partial');
    expect(view.body.itemErrors).toHaveLength(1);

    // A table deleted upstream is reported the same way, as not found.
    data.dropTable(wiki.appToken, wiki.tasks);
    data.table(main.appToken, main.ledger).denied = false;
    const again = await runToEnd(stack, PARTIAL, 'base', 'full');
    expect(again.status).toBe('partial');
    expect(again.item_errors.map((e) => [e.id, e.errorClass])).toEqual([[`${wiki.appToken}/${wiki.tasks}`, 'not_found']]);
    expect((await rowsOf(PARTIAL, main.appToken, main.ledger)).length).toBe(data.table(main.appToken, main.ledger).count);
  });

  it('a run where no table can be read fails, naming the last one', async () => {
    const data = stack.data.bitable(ALL_DENIED);
    const { main } = data.refs;
    data.table(main.appToken, main.projects).denied = true;
    data.table(main.appToken, main.ledger).denied = true;
    await stack.larksync.services.connectors.put(
      ALL_DENIED,
      'base',
      { enabled: true, config: { tables: [{ appToken: main.appToken, tableId: main.projects }, { appToken: main.appToken, tableId: main.ledger }] } },
      'store',
    );
    const run = await runToEnd(stack, ALL_DENIED, 'base', 'full');
    expect(run.status).toBe('failed');
    expect(run.error_class).toBe('permission_denied');
    expect(run.item_errors.map((e) => e.id)).toEqual([`${main.appToken}/${main.projects}`]);
  });

  it('a NUL and a lone surrogate in synced values are stored as U+FFFD and counted; the run succeeds, and a re-read rewrites nothing', async () => {
    const data = stack.data.bitable(POISON);
    const { appToken, projects } = data.refs.main;
    const table = data.table(appToken, projects);
    const nul = table.nth(3)!.record_id;
    const surrogate = table.nth(4)!.record_id;
    table.edit(nul, { Title: [{ type: 'text', text: 'before\u0000after' }] });
    table.edit(surrogate, { Title: [{ type: 'text', text: 'half \ud83d pair' }], 'bad\u0000key': 'x' });
    await stack.larksync.services.connectors.put(POISON, 'base', { enabled: true, config: { tables: [{ appToken, tableId: projects }] } }, 'store');

    const run = await runToEnd(stack, POISON, 'base', 'full');
    expect(run.status).toBe('succeeded');
    const rows = await rowsOf(POISON, appToken, projects);
    expect(rows.length).toBe(table.count);
    const byId = new Map(rows.map((r) => [r.record_id, r]));
    expect(byId.get(nul)?.fields.Title).toEqual([{ type: 'text', text: 'before\uFFFDafter' }]);
    expect(byId.get(surrogate)?.fields.Title).toEqual([{ type: 'text', text: 'half \uFFFD pair' }]);
    expect(byId.get(surrogate)?.fields['bad\uFFFDkey']).toBe('x');
    // Each value counted where it was stored: in fields and in raw (fields is raw's own object, so once), and the key.
    expect(run.values_sanitized).toBeGreaterThanOrEqual(3);

    const seq = async () => (await sql<{ s: string }>`select max(change_seq)::text as s from base_records where tenant_key = ${POISON}`.execute(stack.db.db)).rows[0]?.s;
    const before = await seq();
    const again = await runToEnd(stack, POISON, 'base', 'full');
    expect(again.status).toBe('succeeded');
    expect(await seq()).toBe(before);
  });

  it('attachment links signed afresh on every read rewrite no row; a real change still does, with the latest link', async () => {
    const data = stack.data.bitable(ATTACH);
    const { appToken, ledger } = data.refs.main;
    const table = data.table(appToken, ledger);
    await stack.larksync.services.connectors.put(ATTACH, 'base', { enabled: true, config: { tables: [{ appToken, tableId: ledger }] } }, 'store');
    expect((await runToEnd(stack, ATTACH, 'base', 'full')).status).toBe('succeeded');
    const withFile = (await rowsOf(ATTACH, appToken, ledger)).filter((r) => r.fields.Receipt !== undefined);
    expect(withFile.length).toBeGreaterThan(10);
    const positions = async () =>
      (
        await sql<{ record_key: string; pos: string }>`
          select record_key, change_xid::text || '.' || change_seq::text as pos from base_records where tenant_key = ${ATTACH} order by record_key`.execute(stack.db.db)
      ).rows;
    const before = await positions();
    const link = (r: BaseRow | undefined) => (r?.fields.Receipt as Array<{ url: string }> | undefined)?.[0]?.url;
    const firstLink = link(withFile[0]);

    // Ledger has no ModifiedTime field: every run re-reads it whole, and every read signs the links anew.
    for (const mode of ['incremental', 'full'] as const) expect((await runToEnd(stack, ATTACH, 'base', mode)).status).toBe('succeeded');
    expect(await positions()).toEqual(before);

    const edited = withFile[0]!.record_id;
    table.edit(edited, { Amount: 12345.67 });
    expect((await runToEnd(stack, ATTACH, 'base', 'full')).status).toBe('succeeded');
    const after = await positions();
    expect(after.filter((p, i) => p.pos !== before[i]?.pos).map((p) => p.record_key)).toEqual([`${appToken}:${ledger}:${edited}`]);
    const row = (await rowsOf(ATTACH, appToken, ledger)).find((r) => r.record_id === edited);
    expect(row?.fields.Amount).toBe(12345.67);
    expect(link(row)).not.toBe(firstLink);
  });
});
