import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarksyncApi } from '../../demo/api-client.js';
import type { ProgressView } from '../../demo/progress.js';
import type { StreamProgress } from '../../demo/run-progress.js';
import { runScenario, type DemoSummary } from '../../demo/scenario.js';
import { attendanceNote, formatSummary, formatWrites } from '../../demo/summary.js';
import { seedSimulator, UNAVAILABLE_TO_STORE_APPS, type SeededTenant } from '../../demo/tenants.js';
import { formatKnowledgeBase, startKnowledgeBase, type KnowledgeBase } from '../../demo/knowledge-base.js';
import { STORE_APP, type Stack } from '../helpers/stack.js';
import { startFastStack } from '../helpers/sync-api.js';

/**
 * `npm run demo`'s scenario with tiny data against a test stack: the same pushes, REST calls and
 * polling, so a change that breaks the demo fails here rather than in front of an audience.
 */
describe('the demo scenario', () => {
  let stack: Stack;
  let kb: KnowledgeBase;
  let tenants: SeededTenant[];
  let summary: DemoSummary;
  const said: string[] = [];
  const updates: StreamProgress[][] = [];

  beforeAll(async () => {
    // The RAGFlow fake listens on 127.0.0.1 over http, which larksync with a DATABASE_URL refuses by default.
    stack = await startFastStack({ env: { ALLOW_PRIVATE_SINKS: '1' } });
    kb = await startKnowledgeBase();
    tenants = seedSimulator(stack.sim, stack.data, { baseRecords: 700, approvalsPerDay: 3, approvalDays: 2, usersPerDepartment: 2, attendanceDays: 3, wikiPages: 30 });
    const view: ProgressView = { say: (line) => said.push(line), update: (rows) => updates.push([...rows]), stop: () => undefined };
    const api = new LarksyncApi(stack.larksync.url, stack.env.API_TOKEN ?? '');
    summary = await runScenario({ sim: stack.sim, storeAppId: STORE_APP.appId, tenants, api, view, pollMs: 100, writeRows: 120, knowledgeBase: kb });
  }, 90_000);

  afterAll(async () => {
    await kb?.fake.stop();
    await stack?.stop();
  });

  const row = (tenantKey: string, stream: string) => {
    const found = summary.rows.find((r) => r.tenantKey === tenantKey && r.stream === stream);
    if (!found) throw new Error(`no summary row for ${tenantKey} ${stream}`);
    return found;
  };

  it('syncs every configured stream of every tenant, as many rows as the simulator holds', () => {
    expect(tenants.map((t) => `${t.key}:${t.app}`)).toEqual(['acme:store', 'globex:store', 'initech:custom']);
    for (const t of tenants) {
      for (const [stream, expected] of Object.entries(t.expected)) {
        const r = row(t.key, stream);
        expect(r.status, `${t.key} ${stream}`).toBe('succeeded');
        expect(expected, `${t.key} ${stream} has data`).toBeGreaterThan(0);
        // Attendance is worked out for the seeding instant, the run's window a moment later.
        if (stream === 'attendance_flows') expect(Math.abs((r.rows ?? 0) - (expected ?? 0))).toBeLessThanOrEqual(2);
        else expect(r.rows, `${t.key} ${stream}`).toBe(expected);
      }
    }
    expect(row('acme', 'base_records').rows).toBe(1234 + 640 + 25 + 700 + 20);
    expect(row('acme', 'approval_timeline').rows).toBeGreaterThan(0);
    expect(summary.totalRows).toBe(summary.rows.reduce((n, r) => n + (r.rows ?? 0), 0));
  });

  it('shows attendance as unavailable to the store-app tenants, and synced for the custom app', () => {
    for (const key of ['acme', 'globex']) {
      expect(row(key, 'attendance_flows')).toMatchObject({ status: 'unavailable', rows: null, note: UNAVAILABLE_TO_STORE_APPS });
    }
    expect(row('initech', 'attendance_flows').rows).toBeGreaterThan(0);
    expect(summary.runs.filter((r) => r.status === 'failed').map((r) => `${r.tenantKey}/${r.error?.class}`).sort()).toEqual([
      'acme/unsupported_for_store_app',
      'globex/unsupported_for_store_app',
    ]);
    expect(attendanceNote(summary)).toContain('Initech registered its own app (POST /api/v1/apps) and synced');
    expect(said.some((l) => l.includes('larksync warns about attendance'))).toBe(true);
  });

  it('reached larksync through encrypted pushes and reported progress at every poll', () => {
    expect(said[0]).toMatch(/^Lark pushes the app_ticket to \/lark\/events \(encrypted, signed\): HTTP 200/);
    expect(said.filter((l) => l.includes('app_open of'))).toHaveLength(2);
    const last = updates.at(-1) ?? [];
    // One bar per tenant x stream: 9 streams for each store tenant (and Acme's 2 docs streams), 3 for the custom one.
    expect(last).toHaveLength(11 + 9 + 3);
    expect(last.filter((p) => p.status === 'succeeded').every((p) => p.fraction === 1)).toBe(true);
  });

  it('writes orders through the write API and shows them synced back', () => {
    expect(summary.writes).toMatchObject({ tenantKey: 'acme', records: 120, ok: 120, status: 'succeeded', inBaseRecords: 120, afterSync: 120 });
    expect(summary.writes?.sync.status).toBe('succeeded');
    expect(said.some((l) => /POST \/api\/v1\/tenants\/acme\/writes\?wait=30: 120 of 120 orders written/.test(l))).toBe(true);
    expect(formatWrites(summary)).toMatch(/Synced back: 120 in base_records as soon as the write succeeded.*left 120, one row per order/s);
  });

  it("delivers Acme's Docs and Wiki to the RAGFlow dataset, one parsed document per Lark document", () => {
    const docs = row('acme', 'docs_content');
    expect(docs.status).toBe('succeeded');
    expect(docs.rows).toBeGreaterThan(30);
    expect(summary.knowledgeBase).toMatchObject({ tenantKey: 'acme', documents: docs.rows, delivered: docs.rows, failed: 0, inDataset: docs.rows, parsed: docs.rows });
    expect(said.some((l) => l.startsWith('PUT /api/v1/tenants/acme/sinks/kb: '))).toBe(true);
    expect(formatKnowledgeBase(summary.knowledgeBase)).toMatch(new RegExp(`^Knowledge base: ${docs.rows} of ${docs.rows} Acme Robotics documents .* delivered to the RAGFlow dataset`));
    // The archive folder is excluded by its path.
    expect(kb.fake.documents(kb.datasetId).some((d) => d.name.startsWith('Archived note'))).toBe(false);
  });

  it('prints a summary table with a row per stream, tenant totals and a grand total', () => {
    const text = formatSummary(summary);
    expect(text).toContain('Acme Robotics (store app)');
    expect(text).toContain('Initech (own custom app)');
    expect(text.match(/tenant total/g)).toHaveLength(3);
    expect(text).toMatch(/all 3 tenants\s+[\d,]+/);
    expect(text).toContain(UNAVAILABLE_TO_STORE_APPS);
  });
});
