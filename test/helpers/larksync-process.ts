import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StartOptions } from '../../src/bootstrap.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface LarksyncProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote, stdout and stderr. */
  output: string[];
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  /** Sends one signal (SIGKILL: a crash) and resolves when the process is gone. */
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** Start options a child process can take (JSON only: no logger, no functions). */
export type ChildStartOptions = Pick<StartOptions, 'workerOptions' | 'engineOptions' | 'rateLimitScale' | 'workerPollInterval' | 'ticketOptions' | 'webhookOptions' | 'sinkOptions'>;

export interface SpawnOptions {
  /**
   * Start the process through test/helpers/larksync-child.ts with these options instead of
   * src/server.ts with the defaults (e.g. worker maintenance tuned down so a resume takes seconds).
   */
  start?: ChildStartOptions;
}

/**
 * Runs `node --import tsx src/server.ts` (or, with `opts.start`, test/helpers/larksync-child.ts)
 * as a real second OS process with the given environment, and resolves once it logs 'larksync is
 * listening' (its URL is read from that line).
 */
export async function spawnLarksync(env: Record<string, string>, timeoutMs = 30_000, opts: SpawnOptions = {}): Promise<LarksyncProcess> {
  const entry = opts.start ? 'test/helpers/larksync-child.ts' : 'src/server.ts';
  const tuned: Record<string, string> = opts.start ? { LARKSYNC_CHILD_START: JSON.stringify(opts.start) } : {};
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    // Only what node needs plus the stack's variables: nothing else from the test's environment.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, ...tuned, PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      // Not left running behind a failed test.
      child.kill('SIGKILL');
      reject(new Error(`larksync process did not listen within ${timeoutMs} ms:\n${output.join('')}`));
    }, timeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
    child.stdout?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output.push(text);
      buffered += text;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === 'larksync is listening' && entry.url) {
            clearTimeout(timer);
            resolve(entry.url);
          }
        } catch {
          // Not a JSON log line.
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`larksync process exited (${code}) before listening:\n${output.join('')}`));
    });
  });

  return {
    child,
    url,
    output,
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}
