import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';

/** What larksync's embedded mode keeps in a data directory, plus the demo's log. */
const OWN_ENTRIES = ['pg', 'encryption.key', 'api-token', 'larksync.log'];

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Every demo starts from an empty database, as on a fresh clone. Only the entries larksync and
 * the demo create are removed, so pointing DEMO_DATA_DIR at a folder holding other files loses
 * nothing else. A PostgreSQL still running there (a demo in another terminal, or one that was
 * killed) is never pulled from under its feet.
 */
export async function freshDataDir(dir: string): Promise<void> {
  const pidFile = path.join(dir, 'pg', 'postmaster.pid');
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
      throw new Error(
        `a PostgreSQL is still running on ${path.join(dir, 'pg')} (pid ${pid}): another demo is running, or one was killed. ` +
          `Stop that demo with Ctrl-C, or run \`kill ${pid}\`, then start again.`,
      );
    }
  }
  await mkdir(dir, { recursive: true });
  for (const entry of OWN_ENTRIES) await rm(path.join(dir, entry), { recursive: true, force: true });
}
