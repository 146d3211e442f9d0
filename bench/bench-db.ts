import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { freePort } from '../test/helpers/free-port.js';

/** BENCH_DATABASE_URL (an admin URL), else an embedded PostgreSQL in a temp folder. */
export async function benchServer(): Promise<{ admin: string; stop: () => Promise<void> }> {
  if (process.env.BENCH_DATABASE_URL) return { admin: process.env.BENCH_DATABASE_URL, stop: async () => undefined };
  const dir = await mkdtemp(path.join(tmpdir(), 'larksync-bench-'));
  await chmod(dir, 0o755);
  const embedded = await startEmbeddedPostgres(dir, await freePort(), { persistent: false });
  return {
    admin: embedded.adminUrl,
    stop: async () => {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A new, empty database on the bench server; larksync migrates it when it starts. */
export async function freshDatabase(admin: string): Promise<string> {
  const name = `larksync_bench_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`create database ${name}`);
  await c.end();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * CHECKPOINT before a measured phase. A phase that writes much (a 1,000,000-record sync dirties
 * about a gigabyte of buffers) leaves the checkpointer writing them out during whatever is measured
 * next, which then runs slower and is charged for the checkpointer's CPU (postgresCpuSeconds counts
 * every postgres process). The base benchmark's baseline, run right after the unthrottled sync,
 * measured 880 records/s over 30,000 records and 2,078 over 100,000 on the same machine for that
 * reason. False when the role may not checkpoint (superuser or pg_checkpoint is needed): the phase
 * runs anyway.
 */
export async function checkpoint(admin: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query('checkpoint');
    return true;
  } catch {
    return false;
  } finally {
    await c.end();
  }
}

/** Drops a benchmark's database once measured (large ones are worth it); BENCH_KEEP_DB=1 keeps it. */
export async function dropDatabase(admin: string, url: string): Promise<void> {
  if (process.env.BENCH_KEEP_DB === '1') return;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query(`drop database if exists ${new URL(url).pathname.slice(1)} with (force)`);
  } finally {
    await c.end();
  }
}
