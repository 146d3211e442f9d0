import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface LarksyncProcess {
  url: string;
  /** Resolves with the exit code when the process ends (for any reason). */
  exited: Promise<number | null>;
  /** Resolves once GET /healthz answers; rejects if the process exits first or `timeoutMs` passes. */
  whenReady(timeoutMs: number): Promise<void>;
  /** SIGTERM (graceful: in-flight requests and jobs finish, PostgreSQL stops), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * Starts larksync as `npm start` runs it (src/server.ts, through demo/larksync-entry.ts), with the
 * given environment (no DATABASE_URL: the embedded PostgreSQL) and its log appended to `logFile`.
 */
export function spawnLarksync(env: Record<string, string>, logFile: string): LarksyncProcess {
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', 'demo/larksync-entry.ts'], {
    cwd: ROOT,
    // Only what node and the embedded PostgreSQL need, plus larksync's variables: a DATABASE_URL
    // in the caller's shell must not point the demo at a real database.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}), ...env },
    stdio: ['ignore', log, log, 'ipc'],
    // Its own process group: the terminal's Ctrl-C goes to the demo, which stops larksync in order.
    detached: true,
  });
  closeSync(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${env.PORT}`;

  const stop = async (graceMs = 25_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    // SIGKILL is the last resort only: it would leave the embedded PostgreSQL running.
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  const whenReady = async (timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    let gone = false;
    void exited.then(() => (gone = true));
    for (;;) {
      if (gone) throw new Error(`larksync exited (code ${child.exitCode}) before it was ready: ${await lastLogLine(logFile)}`);
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await stop(20_000);
        throw new Error(`larksync did not answer ${url}/healthz within ${Math.round(timeoutMs / 1000)} s; see ${logFile}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  return { url, exited, whenReady, stop };
}

/** The last thing larksync logged, readable: usually why it stopped. */
async function lastLogLine(logFile: string): Promise<string> {
  const lines = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n');
  const last = lines.at(-1) ?? '';
  try {
    const entry = JSON.parse(last) as { msg?: string; errMessage?: string };
    return `${entry.msg ?? ''}${entry.errMessage ? `: ${entry.errMessage}` : ''} (see ${logFile})`;
  } catch {
    return `${last.slice(0, 300)} (see ${logFile})`;
  }
}
