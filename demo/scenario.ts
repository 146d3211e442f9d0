import type { LarkSimulator, PushResult } from '../simulator/lark-simulator.js';
import type { SyncRunView } from '../src/sync/sync.service.js';
import type { SyncModuleName } from '../src/sync/sync.tables.js';
import { LarksyncApi, waitUntil } from './api-client.js';
import type { ProgressView } from './progress.js';
import { isFinished, isUnavailableToStoreApp, RunProgress, runSeconds, streamsOf } from './run-progress.js';
import { CUSTOM_APP, UNAVAILABLE_TO_STORE_APPS, type SeededTenant } from './tenants.js';
import type { StreamName } from '../src/sync/streams.js';
import { DEMO_WRITE_ROWS, writeOrders, type WriteDemo } from './writes.js';
import { putSink, waitDelivered, type KnowledgeBase, type KnowledgeBaseDemo } from './knowledge-base.js';

export interface ScenarioDeps {
  sim: LarkSimulator;
  storeAppId: string;
  tenants: SeededTenant[];
  api: LarksyncApi;
  view: ProgressView;
  /** How often runs are polled (each poll is one GET per tenant). */
  pollMs?: number;
  /** How long larksync may take to process a push (the worker picks events up). */
  pushTimeoutMs?: number;
  /** Orders written through the write API after the syncs (default DEMO_WRITE_ROWS; 0: none). */
  writeRows?: number;
  /** The RAGFlow dataset tenants with a docs connector feed (their sink `kb`); none: no sink. */
  knowledgeBase?: KnowledgeBase;
}

export interface SummaryRow {
  tenantKey: string;
  tenantName: string;
  app: 'store' | 'custom';
  module: SyncModuleName;
  stream: StreamName;
  /** null when the stream could not be synced */
  rows: number | null;
  status: SyncRunView['status'] | 'unavailable';
  /** the run's duration (started to finished) */
  seconds: number | null;
  note: string;
}

export interface DemoSummary {
  rows: SummaryRow[];
  /** per tenant: first run started to last run finished */
  tenantSeconds: Record<string, number>;
  totalRows: number;
  /** first trigger to last run finished */
  syncSeconds: number;
  runs: SyncRunView[];
  /** the orders written through the write API and read back, when a tenant has a Base */
  writes?: WriteDemo;
  /** the Docs and Wiki documents delivered to the knowledge base, when a tenant has docs */
  knowledgeBase?: KnowledgeBaseDemo;
}

const pushLine = (what: string, push: PushResult) =>
  `Lark pushes ${what} to /lark/events (encrypted, signed): HTTP ${push.status} in ${Math.round(push.durationMs)} ms`;

/**
 * What Lark and an operator would do, in order, over HTTP only: the simulator pushes the
 * app_ticket and the installations to /lark/events, then the REST API registers the custom app,
 * configures every connector, starts full syncs and polls them to the end.
 */
export async function runScenario(deps: ScenarioDeps): Promise<DemoSummary> {
  const { sim, api, view, tenants } = deps;
  const pushTimeoutMs = deps.pushTimeoutMs ?? 30_000;

  // larksync also asked for a ticket when it started; Lark pushes one every hour anyway.
  const ticket = await sim.pushTicket(deps.storeAppId);
  if (ticket.status !== 200) throw new Error(`the app_ticket push was answered ${ticket.status}: ${ticket.body}`);
  await waitUntil(async () => ((await fetch(`${api.baseUrl}/readyz`)).status === 200 ? true : undefined), pushTimeoutMs, 'GET /readyz to answer 200');
  view.say(`${pushLine('the app_ticket', ticket)}; /readyz: ready`);

  for (const t of tenants.filter((x) => x.app === 'store')) {
    const push = await sim.appOpen(deps.storeAppId, t.key);
    if (push.status !== 200) throw new Error(`the app_open push for ${t.key} was answered ${push.status}: ${push.body}`);
    await waitUntil(() => api.get<{ status: string }>(`/api/v1/tenants/${t.key}`).then((x) => (x.status === 'active' ? x : undefined)), pushTimeoutMs, `tenant ${t.key}`);
    view.say(`${pushLine(`app_open of ${t.name} (${t.key})`, push)}; tenant active`);
  }

  for (const t of tenants.filter((x) => x.app === 'custom')) {
    const { body } = await api.call<{ tenantKey: string }>('POST', '/api/v1/apps', { appId: CUSTOM_APP.appId, appSecret: CUSTOM_APP.appSecret });
    view.say(`POST /api/v1/apps: ${t.name} brings its own custom app ${CUSTOM_APP.appId}; tenant ${body.tenantKey} active`);
  }

  for (const t of tenants) {
    const done: string[] = [];
    const warnings: string[] = [];
    for (const module of t.modules) {
      const put = t.connectors[module];
      if (!put) continue;
      const { body } = await api.call<{ warnings: string[] }>('PUT', `/api/v1/tenants/${t.key}/connectors/${module}`, put);
      done.push(put.enabled ? module : `${module} (not scheduled)`);
      warnings.push(...body.warnings.map((w) => `  larksync warns about ${module}: ${w}`));
    }
    view.say(`PUT /api/v1/tenants/${t.key}/connectors/{module}: ${done.join(', ')}`);
    for (const w of warnings) view.say(w);
    if (deps.knowledgeBase && t.connectors.docs) {
      await putSink(api, t.key, deps.knowledgeBase);
      view.say(`PUT /api/v1/tenants/${t.key}/sinks/kb: its Docs and Wiki go to a RAGFlow dataset (${deps.knowledgeBase.url})`);
    }
  }

  const triggeredAt = Date.now();
  const ids = new Map<string, string>();
  for (const t of tenants) {
    for (const module of t.modules) {
      const { body } = await api.call<SyncRunView>('POST', `/api/v1/tenants/${t.key}/syncs`, { module, mode: 'full' });
      ids.set(`${t.key}/${module}`, body.id);
    }
  }
  view.say(`POST /api/v1/tenants/{key}/syncs: ${ids.size} full runs queued; progress from GET /api/v1/tenants/{key}/syncs\n`);

  const progress = new RunProgress(tenants);
  const runs = new Map<string, SyncRunView>();
  for (;;) {
    for (const t of tenants) {
      const { runs: list } = await api.get<{ runs: SyncRunView[] }>(`/api/v1/tenants/${t.key}/syncs?limit=50`);
      for (const run of list) {
        const key = `${t.key}/${run.module}`;
        if (ids.get(key) === run.id) runs.set(key, run);
      }
    }
    view.update(progress.view(runs));
    if (runs.size === ids.size && [...runs.values()].every(isFinished)) break;
    await new Promise((r) => setTimeout(r, deps.pollMs ?? 500));
  }
  const lastFinished = Math.max(...[...runs.values()].map((r) => Date.parse(r.finishedAt ?? '') || Date.now()));
  const summary = summarize(tenants, runs, (lastFinished - triggeredAt) / 1000);

  // The docs run's documents reach the knowledge base after it (delivery is its own job).
  const kbTenant = tenants.find((t) => t.connectors.docs);
  const docsRun = kbTenant ? runs.get(`${kbTenant.key}/docs`) : undefined;
  if (deps.knowledgeBase && kbTenant && docsRun?.status === 'succeeded') {
    view.say('');
    summary.knowledgeBase = await waitDelivered(api, kbTenant, docsRun.counts.docs_content ?? 0, deps.knowledgeBase, view);
  }

  // Writing into Base: a few hundred orders through the write API, then read back by a sync.
  const writer = tenants.find((t) => t.writeTarget);
  const writeRows = deps.writeRows ?? DEMO_WRITE_ROWS;
  if (writer && writeRows > 0) {
    view.say('');
    summary.writes = await writeOrders(api, writer, view, writeRows);
  }
  return summary;
}

function summarize(tenants: SeededTenant[], runs: Map<string, SyncRunView>, syncSeconds: number): DemoSummary {
  const rows: SummaryRow[] = [];
  const tenantSeconds: Record<string, number> = {};
  for (const t of tenants) {
    const own = t.modules.map((m) => runs.get(`${t.key}/${m}`)).filter((r): r is SyncRunView => r !== undefined);
    const started = own.map((r) => Date.parse(r.startedAt ?? r.createdAt));
    const finished = own.map((r) => Date.parse(r.finishedAt ?? r.createdAt));
    tenantSeconds[t.key] = own.length > 0 ? (Math.max(...finished) - Math.min(...started)) / 1000 : 0;
    for (const module of t.modules) {
      const run = runs.get(`${t.key}/${module}`);
      for (const stream of streamsOf(module)) {
        const unavailable = run !== undefined && isUnavailableToStoreApp(run);
        rows.push({
          tenantKey: t.key,
          tenantName: t.name,
          app: t.app,
          module,
          stream,
          rows: unavailable || !run ? null : run.counts[stream] ?? 0,
          status: unavailable ? 'unavailable' : run?.status ?? 'queued',
          seconds: run ? runSeconds(run) ?? null : null,
          note: unavailable ? UNAVAILABLE_TO_STORE_APPS : run?.status === 'failed' ? `${run.error?.class}: ${run.error?.message}` : '',
        });
      }
    }
  }
  return {
    rows,
    tenantSeconds,
    totalRows: rows.reduce((n, r) => n + (r.rows ?? 0), 0),
    syncSeconds,
    runs: [...runs.values()],
  };
}
