import { expect } from 'vitest';
import { DOCS_CONTENT_APIS, type DocsTenant } from '../../simulator/data/docs/index.js';
import type { Stack } from '../helpers/stack.js';
import { call, feedCaughtUp, runWhere, type RunJson } from '../helpers/sync-api.js';

/** Helpers for the docs module tests: configure through the REST API, run, read rows back through the records API. */

export interface DocsRecord {
  key: string;
  deletedAt: string | null;
  updatedAt: string;
  data: Record<string, unknown> & {
    token: string;
    obj_type: string | null;
    path: string | null;
    title: string | null;
    url: string | null;
    edited_time: string | null;
  };
}

/** Docs configs as the REST API takes them. */
export async function configureDocs(stack: Stack, tenantKey: string, config: Record<string, unknown>): Promise<void> {
  const res = await call(stack, 'PUT', `/api/v1/tenants/${tenantKey}/connectors/docs`, { enabled: true, config });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

/**
 * Runs the docs module through the API and returns the finished run. `full` lists every tree (the
 * structure pass); `incremental` lists only trees not listed within treeRefreshMinutes and checks
 * the known documents of the others.
 */
export async function runDocs(stack: Stack, tenantKey: string, timeoutMs = 60_000, mode: 'incremental' | 'full' = 'incremental'): Promise<RunJson> {
  const started = await call<RunJson>(stack, 'POST', `/api/v1/tenants/${tenantKey}/syncs`, { module: 'docs', mode });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  return runWhere(stack, started.body.id, (r) => ['succeeded', 'partial', 'failed', 'cancelled'].includes(r.status), 'finished', timeoutMs);
}

/** Every row of a stream, as the records API serves it, by key (the latest version of each). */
export async function records(stack: Stack, tenantKey: string, stream: 'docs_nodes' | 'docs_content'): Promise<Map<string, DocsRecord>> {
  await feedCaughtUp(stack, tenantKey, [stream]);
  const out = new Map<string, DocsRecord>();
  let cursor: string | undefined;
  for (let guard = 0; guard < 1000; guard += 1) {
    const q = new URLSearchParams({ limit: '1000', ...(cursor ? { cursor } : {}) });
    const res = await call<{ records: DocsRecord[]; nextCursor: string | null }>(stack, 'GET', `/api/v1/tenants/${tenantKey}/streams/${stream}/records?${q}`);
    expect(res.status).toBe(200);
    for (const r of res.body.records) out.set(r.key, r);
    if (!res.body.nextCursor) break;
    cursor = res.body.nextCursor;
  }
  return out;
}

export const live = (rows: Map<string, DocsRecord>) => [...rows.values()].filter((r) => r.deletedAt === null);

/** Counts of the simulator's docs calls since `mark()`. */
export function callCounter(data: DocsTenant) {
  let from = data.calls.length;
  return {
    mark() {
      from = data.calls.length;
    },
    /** Calls of these APIs (default: all) since the mark, optionally naming one target. */
    count(api?: string | readonly string[], target?: string): number {
      const apis = api === undefined ? undefined : typeof api === 'string' ? [api] : api;
      return data.calls.slice(from).filter((c) => (!apis || apis.includes(c.api)) && (target === undefined || c.target === target)).length;
    },
    content(target?: string): number {
      return this.count(DOCS_CONTENT_APIS, target);
    },
    byApi(): Record<string, number> {
      const out: Record<string, number> = {};
      for (const c of data.calls.slice(from)) out[c.api] = (out[c.api] ?? 0) + 1;
      return out;
    },
  };
}
