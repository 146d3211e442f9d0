/**
 * `npm run demo`: a Lark simulator with three companies' data, larksync on its embedded
 * PostgreSQL, every connector configured and synced over the REST API with live progress, a
 * summary, and larksync left running to explore. Ctrl-C stops everything.
 *
 * Sizes and ports: see knobs.ts (DEMO_BASE_RECORDS, DEMO_APPROVALS_PER_DAY, DEMO_APPROVAL_DAYS,
 * DEMO_USERS_PER_DEPARTMENT, DEMO_ATTENDANCE_DAYS, DEMO_PORT, DEMO_SIM_PORT, DEMO_PG_PORT,
 * DEMO_DATA_DIR).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import closeWithGrace from 'close-with-grace';
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { SimData } from '../simulator/data/index.js';
import { LarksyncApi } from './api-client.js';
import { freshDataDir } from './data-dir.js';
import { KnobError, readKnobs } from './knobs.js';
import { spawnLarksync, type LarksyncProcess } from './larksync-process.js';
import { pickPort } from './ports.js';
import { plainView, ttyView, type ProgressView } from './progress.js';
import { runScenario } from './scenario.js';
import { attendanceNote, formatSummary, formatWrites } from './summary.js';
import { formatKnowledgeBase, startKnowledgeBase } from './knowledge-base.js';
import { seedSimulator } from './tenants.js';

/** The demo's store app, as the Lark console would show it (simulated: none of these is real). */
const STORE_APP = {
  appId: 'cli_demo_store_app',
  appSecret: 'demo-store-app-secret',
  verificationToken: 'demo-verification-token',
  encryptKey: 'demo-encrypt-key',
};

/** A call's API, ids left out: /approval/v4/instances/:instance_id, /bitable/v1/apps/:app_token/... */
const apiOf = (p: string) =>
  p
    .replace(/^(\/open-apis\/approval\/v4\/instances)\/[^/]+$/, '$1/:instance_id')
    .replace(/\/apps\/[^/]+\/tables\/[^/]+\//, '/apps/:app_token/tables/:table_id/')
    .replace(/\/departments\/[^/]+\/children$/, '/departments/:department_id/children');
const out = (line = '') => process.stdout.write(`${line}\n`);
const rel = (p: string) => path.relative(process.cwd(), p) || '.';
const secondsSince = (t: number) => `${((performance.now() - t) / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const started = performance.now();
  let knobs;
  try {
    knobs = readKnobs(process.env);
  } catch (err) {
    if (err instanceof KnobError) {
      process.stderr.write(`demo: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const dataDir = path.resolve(knobs.dataDir);
  const logFile = path.join(dataDir, 'larksync.log');
  await freshDataDir(dataDir);

  const [port, simPort, pgPort, kbPort] = [await pickPort(knobs.port), await pickPort(knobs.simPort), await pickPort(knobs.pgPort), await pickPort(knobs.kbPort)];
  const larksyncUrl = `http://127.0.0.1:${port}`;

  const sim = new LarkSimulator({ port: simPort, resendPushDelayMs: 200 });
  sim.addApp({ ...STORE_APP, kind: 'store', eventUrl: `${larksyncUrl}/lark/events` });
  const data = new SimData(sim);
  // Not Lark: a look at what larksync asked of "Lark" (calls per API and answer code).
  sim.app.get('/_sim/calls', async () => {
    const byApi: Record<string, number> = {};
    for (const c of sim.callLog) {
      const key = `${c.method} ${apiOf(c.path)}${c.code ? ` (code ${c.code})` : ''}`;
      byApi[key] = (byApi[key] ?? 0) + 1;
    }
    return { total: sim.callLog.length, byApi };
  });
  const tenants = seedSimulator(sim, data, knobs.sizes);
  const simUrl = await sim.start();
  // Not Lark either: a RAGFlow (its v0.27 HTTP API) for the Docs and Wiki to land in.
  const kb = await startKnowledgeBase(kbPort);

  let larksync: LarksyncProcess | undefined;
  let view: ProgressView | undefined;
  let stopping: Promise<void> | undefined;
  /** Stops larksync (gracefully: in-flight work finishes, then its PostgreSQL stops), then the simulator; once. */
  const shutdown = (why: string) =>
    (stopping ??= (async () => {
      view?.stop();
      out(`\n${why}: stopping larksync (running sync slices finish first, up to 20 s), its PostgreSQL, then the simulator...`);
      const code = await larksync?.stop();
      await sim.stop();
      await kb.fake.stop();
      out(`stopped (larksync exit code ${code ?? 'n/a'}). Data and log stay in ${rel(dataDir)}/ until the next npm run demo.`);
    })());
  closeWithGrace({ delay: 40_000 }, async ({ signal, err }) => {
    if (err) process.stderr.write(`\ndemo failed: ${err.message}\n`);
    await shutdown(signal ?? 'error');
    if (err) throw err;
  });
  failDemo = async (err) => {
    // After Ctrl-C, the scenario's next request fails: that is the stop, not a failure.
    if (stopping) return;
    view?.stop();
    process.stderr.write(`\ndemo failed: ${err.message}\n`);
    await shutdown('failure');
    process.exit(1);
  };

  out(`larksync demo: ${tenants.length} companies, simulated Lark, embedded PostgreSQL. Data and log in ${rel(dataDir)}/`);
  out(`Lark simulator   ${simUrl} (store app ${STORE_APP.appId}; data generated for ${tenants.map((t) => t.name).join(', ')})`);
  out(`RAGFlow fake     ${kb.url} (dataset "${kb.datasetName}" ${kb.datasetId})`);
  const t0 = performance.now();
  larksync = spawnLarksync(
    {
      DATA_DIR: dataDir,
      EMBEDDED_PG_PORT: String(pgPort),
      PORT: String(port),
      HOST: '127.0.0.1',
      LARK_APP_ID: STORE_APP.appId,
      LARK_APP_SECRET: STORE_APP.appSecret,
      LARK_VERIFICATION_TOKEN: STORE_APP.verificationToken,
      LARK_ENCRYPT_KEY: STORE_APP.encryptKey,
      LARK_DOMAIN: simUrl,
      LOG_LEVEL: 'info',
    },
    logFile,
  );
  // Creating a database (initdb) and compiling larksync on the fly take a while on a busy machine.
  await larksync.whenReady(180_000);
  void larksync.exited.then((code) => {
    if (!stopping) void failDemo(new Error(`larksync exited unexpectedly (code ${code}); see ${rel(logFile)}`));
  });
  out(`larksync         ${larksyncUrl} ready in ${secondsSince(t0)} (new embedded PostgreSQL on port ${pgPort}, log ${rel(logFile)})`);

  const apiToken = (await readFile(path.join(dataDir, 'api-token'), 'utf8')).trim();
  const api = new LarksyncApi(larksyncUrl, apiToken);
  view = process.stdout.isTTY ? ttyView() : plainView();
  out('');
  const summary = await runScenario({ sim, storeAppId: STORE_APP.appId, tenants, api, view, knowledgeBase: kb });
  view.stop();

  out('');
  out(formatSummary(summary));
  const note = attendanceNote(summary);
  if (note) out(`\n${note}`);
  const writes = formatWrites(summary);
  if (writes) out(`\n${writes}`);
  const delivered = formatKnowledgeBase(summary.knowledgeBase);
  if (delivered) out(`\n${delivered}`);
  const failed = summary.rows.filter((r) => r.status === 'failed');
  if (failed.length > 0) out(`\n${failed.length} stream(s) failed; see the notes above and ${rel(logFile)}`);
  out(`\nSynced in ${summary.syncSeconds.toFixed(1)} s; the whole demo took ${secondsSince(started)}.`);

  const auth = `-H "Authorization: Bearer $(cat ${rel(path.join(dataDir, 'api-token'))})"`;
  const first = tenants[0]?.key ?? 'acme';
  out(`
larksync keeps running (its scheduler re-syncs every connector hourly). Try:

  REST API     ${larksyncUrl}/api/v1
               curl ${auth} ${larksyncUrl}/api/v1/tenants
               curl ${auth} '${larksyncUrl}/api/v1/tenants/${first}/streams/contact_users/records?limit=3'
               curl ${auth} '${larksyncUrl}/api/v1/tenants/${first}/syncs?limit=5'
               curl ${auth} '${larksyncUrl}/api/v1/tenants/${first}/writes?limit=5'
               curl ${auth} '${larksyncUrl}/api/v1/tenants/${first}/sinks/kb/documents?limit=3'
               The bearer token is in ${rel(path.join(dataDir, 'api-token'))}. It is a local demo credential, so here it is:
               ${apiToken}
  API docs     ${larksyncUrl}/docs  (rendered from openapi.yaml; "Authorize" takes the token above)
  Metrics      ${larksyncUrl}/metrics
  Simulator    ${simUrl}  (stands in for Lark; GET ${simUrl}/_sim/calls counts larksync's calls to it)
  RAGFlow      ${kb.url}  (a fake; GET ${kb.url}/api/v1/datasets/${kb.datasetId}/documents with "Authorization: Bearer ${kb.apiKey}")

Ctrl-C stops larksync, its PostgreSQL and the simulator.`);
}

/** Set once there is something to stop; before that, a failure just exits. */
let failDemo = async (err: Error): Promise<void> => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exit(1);
};

await main().catch((err: Error) => failDemo(err));
