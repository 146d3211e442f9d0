import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { bucketOf } from '../../src/sync/pacer.js';
import { MODULE_RATE_LIMITS } from '../../src/connectors/index.js';

const bucketKey = (app: string, tenant: string, api: string) => bucketOf(app, tenant, api, MODULE_RATE_LIMITS.get(api)!);
import { DOCS_LIMITS } from '../../src/connectors/docs/index.js';
import { STORE_APP, startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { configureDocs, live, records, runDocs } from './docs-helpers.js';

const TENANTS = ['tenant-docs-pace-1', 'tenant-docs-pace-2'];
const SHAPE = { wikiDocuments: 5, wikiDepth: 2, largePages: 0, oversizePages: 0, teamFolders: 1, driveDepth: 1, driveDocuments: 10, archiveDocuments: 12, personalDocuments: 1 };

describe('docs module pacing: the content APIs have one budget per app, shared by its tenants', () => {
  let stack: Stack;

  beforeAll(async () => {
    // Lark's limits enforced by the simulator (5/s per app for the docx family), larksync at its real pace.
    stack = await startStack({ encrypt: false });
    await whenReady(stack);
    for (const t of TENANTS) {
      stack.data.docs(t, SHAPE);
      await openTenant(stack, t);
    }
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('app-scoped limits key their bucket without the tenant', () => {
    expect(DOCS_LIMITS['docs.content']).toEqual({ perSecond: 4.6, burst: 1, scope: 'app' });
    expect(bucketKey('cli_a', 't1', 'docs.content')).toBe(bucketKey('cli_a', 't2', 'docs.content'));
    expect(bucketKey('cli_a', 't1', 'docs.content')).not.toBe(bucketKey('cli_b', 't1', 'docs.content'));
    expect(bucketKey('cli_a', 't1', 'drive.files.list')).not.toBe(bucketKey('cli_a', 't2', 'drive.files.list'));
    expect(bucketKey('cli_a', 't1', 'bitable.records.search')).toBe('cli_a:t1:bitable.records.search');
  });

  it('two tenants syncing at once stay within 5 content calls a second for the app: Lark never throttles', async () => {
    for (const t of TENANTS) await configureDocs(stack, t, { sources: [{ folderToken: stack.data.docs(t).refs.teamFolder }] });
    const runs = await Promise.all(TENANTS.map((t) => runDocs(stack, t, 120_000)));
    for (const run of runs) {
      expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
      expect(run.throttledWaits).toBe(0);
    }
    for (const t of TENANTS) {
      const data = stack.data.docs(t);
      expect(data.count('docs.content', { code: 99991400 })).toBe(0);
      expect(data.count('docs.content', { code: 0 })).toBeGreaterThan(10);
      expect(live(await records(stack, t, 'docs_content')).length).toBeGreaterThan(10);
    }
    const buckets = await sql<{ bucket: string }>`select bucket from rate_buckets where bucket like ${'%docs.content'}`.execute(stack.db.db);
    expect(buckets.rows.map((r) => r.bucket)).toEqual([`${STORE_APP.appId}:*:docs.content`]);
  });
});
