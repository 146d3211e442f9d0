import { sql } from 'kysely';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYNC_MODULES, MODULE_NAMES } from '../../src/connectors/index.js';
import { STREAM_NAMES } from '../../src/schemas/records.js';
import type { SyncModuleName } from '../../src/sync/sync.tables.js';
import { addIssuedSecrets, configuredSecrets, findLogLeaks, SecretSet } from '../helpers/secret-watch.js';
import { openTenant, startStack, STORE_APP, whenReady, type Stack } from '../helpers/stack.js';
import { changedTables, fingerprint, watchedTables, type Fingerprints } from '../helpers/table-fingerprints.js';
import { waitFor } from '../helpers/wait.js';
import { budget, errorEnvelope, FuzzStats, runs, viaSocket, type Answer } from './exchange.js';
import { authorizedWrites, pinnedRequest, requestsFor, type RestContext, type RestSpec } from './rest-cases.js';
import { liveRoutes, type LiveRoute } from './rest-routes.js';
import type { JsonSchema } from './schema-values.js';

/**
 * Property tests for every REST route, enumerated from the running app (its route tree and the
 * OpenAPI document it generates), so a new route is fuzzed without touching this file. For every
 * case: never a 5xx, errors are `{ error: { code, message } }` (HTML pages on the browser's routes),
 * a refused (4xx) or read-only request changes no stored row in any table (but a started sign-in's state), a 2xx write matches what the database now holds,
 * and no answer or log line carries a secret of ours.
 *
 * The worker is stopped after setup: nothing but the request under test writes, so every change
 * seen is that request's.
 */

const CUSTOM = { appId: 'cli_fuzz_custom_app', appSecret: 'custom-app-secret-fuzz-7c1d9e', tenantKey: 'tenant-fuzz-custom' };
const TENANTS = { active: 'tenant-fuzz-active', paused: 'tenant-fuzz-paused', gone: 'tenant-fuzz-gone' };
/**
 * Writes a 2xx answer of each route may make; any other table changing is a failure. (A 409
 * tenant_not_active from POST syncs also cancels that tenant's runs by design; the paused and
 * uninstalled tenants here never have runs, so every 4xx must leave every table as it was.)
 */
const WRITES: Record<string, string[]> = {
  // A saved connector queues its change-event subscriptions (a job, and their rows).
  'PUT /api/v1/tenants/:tenantKey/connectors/:module': ['public.connectors', 'graphile_worker._private_job_queues', 'graphile_worker._private_jobs', 'public.lark_subscriptions'],
  'POST /api/v1/tenants/:tenantKey/syncs': ['graphile_worker._private_job_queues', 'graphile_worker._private_jobs', 'public.sync_runs'],
  'POST /api/v1/syncs/:id/cancel': ['public.sync_runs'],
  'POST /api/v1/apps': ['public.access_tokens', 'public.apps', 'public.tenant_audit', 'public.tenants'],
};

/**
 * Browser pages (Lark sign-in, the admin page): their refusals are HTML pages for a person, not the
 * API's envelope (the admin page's JSON progress endpoint keeps the envelope).
 */
const isWebRoute = (spec: RestSpec) => /^\/(admin|auth\/lark)(\/|$)/.test(spec.route.split(' ')[1] ?? '');

/** Read-only requests that write by design: starting a sign-in stores its single-use state. */
const READ_WRITES: Record<string, string[]> = {
  'GET /auth/lark/login': ['public.oauth_states'],
  'HEAD /auth/lark/login': ['public.oauth_states'],
};

/** The route a request went to: its own route's path with the method it was actually sent with. */
const servedBy = (spec: RestSpec) => `${spec.method} ${spec.route.split(' ')[1] ?? ''}`;

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * Fastify's router answers two kinds of paths itself, bypassing the app's error handler (a known
 * gap, see the report): one that does not percent-decode (400 FST_ERR_BAD_URL) and a parameter over
 * maxParamLength (414 FST_ERR_MAX_PARAM_LENGTH). Recognised only where the path really is such.
 */
function isFrameworkAnswer(spec: RestSpec, answer: Answer): boolean {
  const path = spec.target.split('?')[0] ?? '';
  let decodes = true;
  try {
    decodeURIComponent(path);
  } catch {
    decodes = false;
  }
  if (!decodes && answer.status === 400 && answer.text.includes('"code":"FST_ERR_BAD_URL"')) return true;
  const longest = Math.max(...path.split('/').map((s) => s.length));
  return longest > 256 && answer.status === 414 && answer.text.includes('"code":"FST_ERR_MAX_PARAM_LENGTH"');
}

interface Transcript {
  what: string;
  text: string;
  tolerated: Set<string>;
}

describe('REST API fuzz: every route, hostile input', () => {
  let stack: Stack;
  let routes: LiveRoute[];
  let tables: string[];
  let ctx: RestContext & { simUrl: string; customApp: typeof CUSTOM };
  let last: Fingerprints | undefined;
  const secrets = new SecretSet();
  const transcripts: Transcript[] = [];
  const stats = new FuzzStats();
  const runIds: string[] = [];
  let sinceHealth = 0;
  let knownFramework = 0;

  beforeAll(async () => {
    // A rate limit this high never triggers: the fuzzer sends thousands of requests a minute.
    stack = await startStack({ env: { API_RATE_LIMIT: '1000000' } });
    await whenReady(stack);
    stack.sim.addApp({ ...CUSTOM, kind: 'custom', verificationToken: 'vt-fuzz-custom' });
    for (const key of Object.values(TENANTS)) await openTenant(stack, key);
    await stack.sim.appStatusChange(STORE_APP.appId, TENANTS.paused, 'stop_by_tenant');
    await stack.sim.appUninstalled(STORE_APP.appId, TENANTS.gone);
    const { tenants } = stack.larksync.services;
    await waitFor(async () => (await tenants.get(TENANTS.paused))?.status === 'paused', 10_000, 'paused tenant');
    await waitFor(async () => (await tenants.get(TENANTS.gone))?.status === 'uninstalled', 10_000, 'uninstalled tenant');
    expect((await stack.api('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret })).status).toBe(201);
    // Something to read and to cancel: a configured connector and two runs (one cancelled).
    for (const module of ['contact', 'approval'] as const) {
      const config = module === 'approval' ? { approvalCodes: ['APPROVAL-1'] } : {};
      expect((await stack.api('PUT', `/api/v1/tenants/${TENANTS.active}/connectors/${module}`, { enabled: false, config })).status).toBe(200);
    }
    // Stop the worker first, so the runs stay as created.
    await stack.larksync.worker?.stop();
    for (const module of ['contact', 'approval']) {
      const res = await stack.api('POST', `/api/v1/tenants/${TENANTS.active}/syncs`, { module });
      expect(res.status).toBe(202);
      runIds.push(((await res.json()) as { id: string }).id);
    }
    expect((await stack.api('POST', `/api/v1/syncs/${runIds[0]}/cancel`)).status).toBe(200);

    configuredSecrets(stack, secrets);
    secrets.add('custom app secret', CUSTOM.appSecret);
    await addIssuedSecrets(stack, secrets, [
      { appId: STORE_APP.appId, tenantKey: TENANTS.active },
      { appId: CUSTOM.appId, tenantKey: CUSTOM.tenantKey },
    ]);

    routes = liveRoutes(stack.larksync.app);
    tables = await watchedTables(stack.db.db);
    const moduleConfigs: Record<string, JsonSchema> = {};
    for (const m of MODULE_NAMES) moduleConfigs[m] = (SYNC_MODULES[m].configSchema ?? { type: 'object' }) as JsonSchema;
    ctx = {
      apiToken: stack.env.API_TOKEN as string,
      secrets: secrets.values(),
      known: {
        tenantKey: [...Object.values(TENANTS), CUSTOM.tenantKey],
        module: MODULE_NAMES,
        stream: STREAM_NAMES,
        id: runIds,
        appId: [STORE_APP.appId, CUSTOM.appId],
      },
      moduleConfigs,
      simUrl: stack.sim.url,
      customApp: CUSTOM,
    };
  });
  afterAll(async () => {
    console.log(`${stats.report('REST API fuzz')}\n  (Fastify router answers without the envelope, FST_ERR_BAD_URL / FST_ERR_MAX_PARAM_LENGTH: ${knownFramework})`);
    await stack?.stop();
  });

  it('enumerates the live routes, documented and hidden ones', () => {
    const names = routes.map((r) => `${r.method} ${r.url}`);
    for (const expected of [
      'GET /api/v1/tenants',
      'PUT /api/v1/tenants/:tenantKey/connectors/:module',
      'POST /api/v1/apps',
      'POST /api/v1/syncs/:id/cancel',
      'GET /api/v1/tenants/:tenantKey/streams/:stream/records',
      'GET /healthz',
      'POST /lark/events',
    ]) {
      expect(names).toContain(expected);
    }
    expect(routes.filter((r) => r.documented).length).toBeGreaterThanOrEqual(12);
    expect(tables).toEqual(expect.arrayContaining(['public.tenants', 'public.apps', 'public.connectors', 'public.sync_runs', 'public.access_tokens', 'public.app_tickets', 'public.lark_events', 'graphile_worker._private_jobs']));
  });

  async function runRow(id: string) {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    return stack.db.db.selectFrom('sync_runs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** What a 2xx write must have done, checked against the database. */
  async function checkWrite(spec: RestSpec, answer: Answer, changed: string[], label: string, before: { run?: { status: string } }) {
    const route = servedBy(spec);
    const allowed = WRITES[route];
    expect(allowed, `2xx ${spec.method} on a route that should not write: ${label}`).toBeDefined();
    for (const t of changed) expect(allowed, `${t} changed: ${label}`).toContain(t);
    const body = JSON.parse(answer.text) as Record<string, unknown>;
    const params = (spec.target.split('?')[0] ?? '').split('/').map(safeDecode);
    const sent = spec.body === undefined ? {} : (JSON.parse(spec.body) as Record<string, unknown>);
    switch (route) {
      case 'PUT /api/v1/tenants/:tenantKey/connectors/:module': {
        const row = await stack.db.db
          .selectFrom('connectors')
          .selectAll()
          .where('tenant_key', '=', params[4] as string)
          .where('module', '=', params[6] as SyncModuleName)
          .executeTakeFirst();
        expect(row, label).toBeDefined();
        expect({ tenantKey: body.tenantKey, module: body.module, enabled: body.enabled, intervalMinutes: body.intervalMinutes, config: body.config }, label).toEqual({
          tenantKey: row?.tenant_key,
          module: row?.module,
          enabled: row?.enabled,
          intervalMinutes: row?.interval_minutes,
          config: row?.config,
        });
        // Ajv coerces scalars (coerceTypes), so "true" or "60" arrive as true and 60.
        if (typeof sent.enabled === 'boolean') expect(body.enabled, label).toBe(sent.enabled);
        expect(body.intervalMinutes, label).toBe(sent.intervalMinutes === undefined ? 60 : Number(sent.intervalMinutes));
        break;
      }
      case 'POST /api/v1/tenants/:tenantKey/syncs': {
        const row = await runRow(String(body.id));
        expect(row, label).toBeDefined();
        expect({ tenant: row?.tenant_key, module: row?.module }, label).toEqual({ tenant: params[4], module: sent.module });
        if (answer.status === 202) {
          expect(row?.status, label).toBe('queued');
          expect(row?.mode, label).toBe(sent.mode ?? 'incremental');
          expect(changed, label).toContain('public.sync_runs');
          runIds.push(String(body.id));
        } else {
          expect(answer.status, label).toBe(200);
          expect(['queued', 'running'], label).toContain(row?.status);
          expect(changed, `an existing run returned, yet something changed: ${label}`).toEqual([]);
        }
        break;
      }
      case 'POST /api/v1/syncs/:id/cancel': {
        const row = await runRow(params[4] as string);
        expect(row?.status, label).toBe(body.status);
        if (before.run && ['queued', 'running'].includes(before.run.status)) expect(row?.status, label).toBe('cancelled');
        else expect(changed, `cancel of a finished run changed something: ${label}`).toEqual([]);
        break;
      }
      case 'POST /api/v1/apps': {
        expect(answer.status, label).toBe(201);
        expect(body, label).toEqual({ appId: sent.appId, tenantKey: CUSTOM.tenantKey, type: 'custom' });
        const app = await stack.db.db.selectFrom('apps').select(['kind', 'domain']).where('app_id', '=', String(sent.appId)).executeTakeFirst();
        expect(app, label).toEqual({ kind: 'custom', domain: sent.domain ?? stack.env.LARK_DOMAIN });
        const tenant = await stack.larksync.services.tenants.get(CUSTOM.tenantKey);
        expect(tenant?.app_id, label).toBe(sent.appId);
        break;
      }
    }
  }

  /** The oracle: one request, every invariant. */
  async function check(property: string, spec: RestSpec): Promise<void> {
    const before = last ?? (await fingerprint(stack.db.db, tables));
    const runBefore = servedBy(spec) === 'POST /api/v1/syncs/:id/cancel' ? await runRow(safeDecode(spec.target.split('/')[4] ?? '')) : undefined;
    const started = performance.now();
    const answer = await viaSocket(stack.larksync.url, { method: spec.method, target: spec.target, headers: spec.headers, body: spec.body === undefined ? undefined : Buffer.from(spec.body, 'utf8') });
    stats.timed(property, performance.now() - started);
    stats.count(property, spec.kind, answer.status);
    const after = await fingerprint(stack.db.db, tables);
    last = after;
    const changed = changedTables(before, after);
    const label = `${spec.method} ${spec.target.slice(0, 200)} (${spec.route}, ${spec.kind}) -> ${answer.status} ${answer.text.slice(0, 300)}`;

    expect(answer.status, `no answer: ${label}`).toBeGreaterThan(0);
    expect(answer.status, `5xx: ${label}`).toBeLessThan(500);
    const apiRoute = spec.route.split(' ')[1]?.startsWith('/api/') ?? false;
    if (apiRoute && spec.routeMatched && !spec.authValid) {
      expect(answer.status, `a wrong token got through: ${label}`).toBe(401);
    }
    const readOnly = ['GET', 'HEAD', 'OPTIONS'].includes(spec.method);
    if (answer.status >= 400 || readOnly) {
      const byDesign = answer.status < 400 ? (READ_WRITES[servedBy(spec)] ?? []) : [];
      expect(changed.filter((t) => !byDesign.includes(t)), `a ${answer.status >= 400 ? 'refused' : 'read-only'} request wrote: ${label}`).toEqual([]);
    }
    if (answer.status >= 400) {
      if (isFrameworkAnswer(spec, answer)) {
        knownFramework += 1;
      } else if (isWebRoute(spec) && answer.headers['content-type']?.startsWith('text/html')) {
        if (spec.method !== 'HEAD') expect(answer.text, `a web page's refusal is a page: ${label}`).toMatch(/^<!doctype html>/);
      } else if (!spec.httpMalformed && spec.method !== 'HEAD') {
        expect(errorEnvelope(answer.text), `not an error envelope: ${label}`).toBeDefined();
      }
    } else if (answer.status >= 200 && answer.status < 300) {
      if (answer.headers['content-type']?.startsWith('application/json') && spec.method !== 'HEAD') {
        expect(() => JSON.parse(answer.text), label).not.toThrow();
      }
      if (!readOnly && (changed.length > 0 || WRITES[servedBy(spec)])) await checkWrite(spec, answer, changed, label, { run: runBefore });
    }

    // A caller's own path and query may be named back (a 404 names what was not found); a body
    // value may come back in a 2xx (a stored config). Nothing else of ours, ever.
    const tolerated = new Set([...spec.plantedInUrl, spec.target, ...(answer.status < 300 ? spec.plantedInBody : [])]);
    const text = `${answer.status} ${JSON.stringify(answer.headers)} ${answer.text}`;
    transcripts.push({ what: label.slice(0, 300), text: text.slice(0, 8000), tolerated });
    expect(secrets.find(text, tolerated), `secret in answer: ${label}`).toEqual([]);

    sinceHealth += 1;
    if (sinceHealth >= 50) {
      sinceHealth = 0;
      expect((await fetch(`${stack.larksync.url}/healthz`)).status).toBe(200);
    }
  }

  const property = (name: string, make: () => fc.Arbitrary<RestSpec>, numRuns: number, examples: () => RestSpec[] = () => []) =>
    it(
      name,
      async () => {
        await fc.assert(
          fc.asyncProperty(make(), (spec) => check(name, spec)),
          {
            numRuns: runs(numRuns),
            interruptAfterTimeLimit: budget(),
            markInterruptAsFailure: false,
            examples: examples().map((e): [RestSpec] => [e]),
          },
        );
        expect((await fetch(`${stack.larksync.url}/healthz`)).status).toBe(200);
      },
      budget() + 30_000,
    );

  const anyRoute = (opts: Parameters<typeof requestsFor>[2], filter: (r: LiveRoute) => boolean = () => true) => () =>
    fc.oneof(...routes.filter(filter).map((r) => requestsFor(r, ctx, opts)));

  // Counterexamples this fuzzer found once (each answered 500 or bypassed the envelope), kept so they run every time.
  property('any route: odd methods, paths, queries, headers and bodies', anyRoute({ auth: 'any', plantInBody: false }), 800, () => [
    pinnedRequest(ctx, 'GET /api/v1/tenants/:tenantKey', '/api/v1/tenants/%00'),
    pinnedRequest(ctx, 'GET /api/v1/tenants/:tenantKey/syncs', `/api/v1/tenants/${TENANTS.active}/syncs?module=%00`),
    pinnedRequest(ctx, 'GET /api/v1/tenants', '/api/v1/tenants?cursor=a%00b'),
    pinnedRequest(ctx, 'GET /api/v1/tenants/:tenantKey', `/api/v1/tenants/${'p'.repeat(300)}`),
    pinnedRequest(ctx, 'GET /healthz', '/healthz%'),
  ]);
  property(
    'every /api route refuses a missing or wrong token with 401, secrets planted everywhere',
    anyRoute({ auth: 'invalid', plantInBody: true }, (r) => r.url.startsWith('/api/')),
    350,
  );
  property('authorized near-valid writes: connectors, syncs, apps, cancel', () => authorizedWrites(ctx), 500, () => {
    const connector = `/api/v1/tenants/${TENANTS.active}/connectors/approval`;
    const put = 'PUT /api/v1/tenants/:tenantKey/connectors/:module';
    return [
      pinnedRequest(ctx, put, connector, { enabled: true, config: { approvalCodes: ['a\u0000'] } }),
      pinnedRequest(ctx, put, connector, { enabled: true, config: { approvalCodes: ['\ud800'] } }),
      pinnedRequest(ctx, put, connector, { enabled: true, config: { approvalCodes: ['ok'], '\u0000': 1 } }),
      pinnedRequest(ctx, 'POST /api/v1/apps', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret, domain: '__proto__' }),
      pinnedRequest(ctx, 'POST /api/v1/apps', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret, domain: 'constructor' }),
    ];
  });

  it('leaked no secret into answers or logs, and still answers', async () => {
    await addIssuedSecrets(stack, secrets, [
      { appId: STORE_APP.appId, tenantKey: TENANTS.active },
      { appId: CUSTOM.appId, tenantKey: CUSTOM.tenantKey },
    ]);
    for (const t of transcripts) expect(secrets.find(t.text, t.tolerated), t.what).toEqual([]);
    expect(findLogLeaks(stack.logs, secrets)).toEqual([]);
    expect((await fetch(`${stack.larksync.url}/healthz`)).status).toBe(200);
    // The fuzzed stack still works end to end.
    const res = await stack.api('GET', `/api/v1/tenants/${TENANTS.active}`);
    expect(res.status).toBe(200);
    const runs = await sql<{ n: number }>`select count(*)::int as n from sync_runs`.execute(stack.db.db);
    expect(runs.rows[0]?.n).toBeGreaterThanOrEqual(2);
  });
});
