import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretSet, configuredSecrets, findLogLeaks } from '../helpers/secret-watch.js';
import { openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';

// The sinks REST API over real HTTP, in production mode (DATABASE_URL set, ALLOW_PRIVATE_SINKS
// unset): create, read, replace and delete a sink; the API key is sealed, never answered and never
// logged; bad input is a 400 with a stable code saying what to fix; unknown things are 404s.

const TENANT = 'tk-sinks-api';
const RAGFLOW_KEY = 'ragflow-Zm9vYmFyYmF6cXV4LXNlY3JldC0x';
const DIFY_KEY = 'dataset-c2VjcmV0LWRpZnkta2V5LTAw';
const DATASET = 'a1b2c3d4e5f61011a2b3c4d5e6f70809';
// A public address literal: production accepts it without a DNS lookup (nothing is delivered here).
const PUBLIC = 'https://8.8.8.8';

let stack: Stack;
const answers: string[] = [];

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await stack.api(method, `/api/v1/tenants/${TENANT}/sinks${path}`, body);
  const text = await res.text();
  answers.push(text);
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  stack = await startStack();
  await whenReady(stack);
  await openTenant(stack, TENANT);
});
afterAll(async () => {
  await stack?.stop();
});

describe('sinks API', () => {
  it('creates a sink (201) and never answers its key; the URL is stored in canonical form', async () => {
    const res = await call('PUT', '/kb', { type: 'ragflow', url: `${PUBLIC}/api/v1/`, apiKey: RAGFLOW_KEY, datasetId: DATASET });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      tenantKey: TENANT,
      name: 'kb',
      type: 'ragflow',
      url: PUBLIC,
      datasetId: DATASET,
      enabled: true,
      apiKeySet: true,
      delivery: { state: 'not_fed', failures: 0, lastError: null },
      documents: { total: 0, pending: 0, delivering: 0, done: 0, failed: 0, deleted: 0 },
    });
    expect(res.body).not.toHaveProperty('apiKey');
    const got = await call('GET', '/kb');
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);

    // Sealed at rest: the row holds no trace of the key.
    const row = await sql<{ sealed: Buffer }>`select api_key_sealed as sealed from sinks where tenant_key = ${TENANT} and name = 'kb'`.execute(stack.db.db);
    const sealed = row.rows[0]!.sealed;
    expect(sealed.includes(Buffer.from(RAGFLOW_KEY))).toBe(false);
    expect(stack.larksync.services.sealer.open(sealed, `sink-api-key:${TENANT}:kb`)).toBe(RAGFLOW_KEY);
  });

  it('replaces a sink (200); without apiKey the stored key is kept', async () => {
    const before = await sql<{ sealed: Buffer }>`select api_key_sealed as sealed from sinks where name = 'kb'`.execute(stack.db.db);
    const res = await call('PUT', '/kb', { type: 'ragflow', url: PUBLIC, datasetId: DATASET, enabled: false });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ enabled: false, apiKeySet: true, delivery: { state: 'disabled' } });
    const after = await sql<{ sealed: Buffer }>`select api_key_sealed as sealed from sinks where name = 'kb'`.execute(stack.db.db);
    expect(after.rows[0]!.sealed.equals(before.rows[0]!.sealed)).toBe(true);
    const on = await call('PUT', '/kb', { type: 'ragflow', url: PUBLIC, datasetId: DATASET.toUpperCase() });
    // No docs connector lists it (config.sinks): nothing is delivered (and nothing leaves this machine).
    expect(on.body).toMatchObject({ enabled: true, datasetId: DATASET, delivery: { state: 'not_fed' } });
  });

  it('a new destination starts a fresh mapping (the old one is dropped; its documents stay where they are)', async () => {
    await sql`insert into sink_documents (tenant_key, sink_name, doc_token, generation, status, remote_id)
              values (${TENANT}, 'kb', 'doxcnOldMapping000000001', 1, 'done', 'x')`.execute(stack.db.db);
    expect((await call('GET', '/kb')).body.documents.total).toBe(1);
    const moved = await call('PUT', '/kb', { type: 'ragflow', url: PUBLIC, datasetId: 'ffffffffffffffffffffffffffffffff' });
    expect(moved.status).toBe(200);
    expect(moved.body.documents.total).toBe(0);
    const gen = await sql<{ generation: number }>`select generation from sinks where name = 'kb'`.execute(stack.db.db);
    expect(gen.rows[0]!.generation).toBe(2);
  });

  it('refuses bad input with a 400, a stable code and what to fix', async () => {
    const cases: Array<[string, unknown, string, RegExp]> = [
      ['/new', { type: 'ragflow', url: PUBLIC, datasetId: DATASET }, 'api_key_required', /apiKey is required/],
      ['/new', { type: 'notion', url: PUBLIC, apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_request', /body\.type: must be one of: ragflow, dify/],
      ['/new', { type: 'ragflow', url: 'http://127.0.0.1:9380', apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_sink_url', /https.*ALLOW_PRIVATE_SINKS/],
      ['/new', { type: 'ragflow', url: 'https://10.1.2.3', apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_sink_url', /private, loopback or link-local.*ALLOW_PRIVATE_SINKS/],
      ['/new', { type: 'ragflow', url: 'https://localhost:9380', apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_sink_url', /private/],
      ['/new', { type: 'ragflow', url: 'https://169.254.169.254', apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_sink_url', /link-local/],
      ['/new', { type: 'ragflow', url: 'ftp://8.8.8.8', apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_sink_url', /https/],
      ['/new', { type: 'ragflow', url: 'https://u:p@8.8.8.8', apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_sink_url', /credentials/],
      ['/new', { type: 'ragflow', url: 'https://8.8.8.8/?x=1', apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_sink_url', /query/],
      ['/new', { type: 'ragflow', url: PUBLIC, apiKey: RAGFLOW_KEY, datasetId: 'not-a-dataset' }, 'invalid_dataset_id', /32 hex digits/],
      ['/new', { type: 'dify', url: PUBLIC, apiKey: DIFY_KEY, datasetId: DATASET.slice(0, 20) }, 'invalid_dataset_id', /UUID/],
      ['/new', { type: 'dify', url: PUBLIC, apiKey: 'app-notAKnowledgeKey123', datasetId: '4f1e2d3c-1a2b-4c3d-8e9f-0a1b2c3d4e5f' }, 'invalid_api_key', /dataset-/],
      ['/new', { type: 'ragflow', url: PUBLIC, apiKey: 'has a space', datasetId: DATASET }, 'invalid_request', /body\.apiKey/],
      ['/new', { type: 'ragflow', url: PUBLIC, apiKey: RAGFLOW_KEY, datasetId: DATASET, extra: 1 }, 'invalid_request', /body\.extra: is not a known property/],
      ['/Bad!Name', { type: 'ragflow', url: PUBLIC, apiKey: RAGFLOW_KEY, datasetId: DATASET }, 'invalid_request', /params\.name/],
    ];
    for (const [path, body, code, message] of cases) {
      const res = await call('PUT', path, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code, JSON.stringify(body)).toBe(code);
      expect(res.body.error.message, JSON.stringify(body)).toMatch(message);
    }
    // Nothing was stored by a refused request.
    expect((await call('GET', '/new')).status).toBe(404);
  });

  it('a Dify sink takes the Service API base with or without /v1; its dataset id may come without dashes', async () => {
    const res = await call('PUT', '/dify-kb', { type: 'dify', url: PUBLIC, apiKey: DIFY_KEY, datasetId: '4f1e2d3c1a2b4c3d8e9f0a1b2c3d4e5f' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ url: `${PUBLIC}/v1`, datasetId: '4f1e2d3c-1a2b-4c3d-8e9f-0a1b2c3d4e5f' });
  });

  it('lists documents by status with keyset pages; a bad cursor or status is a 400', async () => {
    for (let i = 0; i < 5; i += 1) {
      await sql`insert into sink_documents (tenant_key, sink_name, doc_token, generation, status, remote_id, remote_name, pushed_hash, remote_status)
                values (${TENANT}, 'kb', ${`doxcnListing00000000000${i}`}, 2, ${i < 3 ? 'done' : 'failed'}, ${`id${i}`}, ${`Page ${i} (0000000${i}).md`}, 'h', 'DONE')`.execute(stack.db.db);
    }
    const first = await call('GET', '/kb/documents?status=done&limit=2');
    expect(first.status).toBe(200);
    expect(first.body.documents.map((d: { larkToken: string }) => d.larkToken)).toEqual(['doxcnListing000000000000', 'doxcnListing000000000001']);
    expect(first.body.documents[0]).toMatchObject({ status: 'done', sinkDocumentId: 'id0', sinkDocumentName: 'Page 0 (00000000).md', pushedHash: 'h', sinkStatus: 'DONE', bodyHash: null });
    const second = await call('GET', `/kb/documents?status=done&limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.documents.map((d: { larkToken: string }) => d.larkToken)).toEqual(['doxcnListing000000000002']);
    expect(second.body.nextCursor).toBeNull();
    expect((await call('GET', '/kb/documents?status=failed')).body.documents).toHaveLength(2);
    expect((await call('GET', '/kb/documents?status=lost')).body.error.code).toBe('invalid_request');
    expect((await call('GET', '/kb/documents?cursor=bm9wZQ')).body.error.code).toBe('invalid_cursor');
    expect((await call('GET', '/kb/documents?limit=0')).status).toBe(400);
    expect((await call('GET', '/nope/documents')).body.error.code).toBe('sink_not_found');
  });

  it('reconcile queues a rebuild (202)', async () => {
    const res = await call('POST', '/kb/reconcile');
    expect(res.status).toBe(202);
    expect(res.body.name).toBe('kb');
    const row = await sql<{ rebuild: boolean }>`select rebuild_requested as rebuild from sinks where name = 'kb'`.execute(stack.db.db);
    expect(row.rows[0]!.rebuild).toBe(true);
  });

  it('deletes a sink (204) and its mapping; then 404 sink_not_found; an unknown tenant is 404 tenant_not_found', async () => {
    expect((await call('DELETE', '/kb')).status).toBe(204);
    const gone = await call('GET', '/kb');
    expect(gone.status).toBe(404);
    expect(gone.body.error).toMatchObject({ code: 'sink_not_found', message: expect.stringMatching(/PUT \/api\/v1\/tenants\/tk-sinks-api\/sinks\/kb/) });
    expect((await call('DELETE', '/kb')).body.error.code).toBe('sink_not_found');
    const left = await sql<{ n: number }>`select count(*)::int as n from sink_documents where sink_name = 'kb'`.execute(stack.db.db);
    expect(left.rows[0]!.n).toBe(0);
    const res = await stack.api('GET', '/api/v1/tenants/tk-nobody/sinks/kb');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('tenant_not_found');
    const unauth = await stack.api('GET', `/api/v1/tenants/${TENANT}/sinks/dify-kb`, undefined, 'wrong-token-000000000');
    expect(unauth.status).toBe(401);
  });

  it('no sink key appears in any answer or log line', async () => {
    const secrets = configuredSecrets(stack, new SecretSet());
    secrets.add('ragflow sink key', RAGFLOW_KEY);
    secrets.add('dify sink key', DIFY_KEY);
    const inAnswers = answers.flatMap((a) => secrets.find(a).filter((f) => f.includes('sink key')));
    expect(inAnswers).toEqual([]);
    const leaks = findLogLeaks(stack.logs, secrets).filter((l) => l.found.some((f) => f.includes('sink key')));
    expect(leaks).toEqual([]);
  });
});
