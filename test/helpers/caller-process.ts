import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { CallerReport } from './token-caller.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Caller {
  ready: Promise<void>;
  /** Sends the start instant (epoch ms); the caller fires at that time. */
  start(at: number): void;
  report: Promise<CallerReport>;
  /** Sends a signal (SIGKILL: a crash) and resolves once the process is gone. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a caller process (a script relative to the repo root) speaking the token-caller
 * protocol: it prints {"ready":true}, reads a start time on stdin, fires, and prints one report.
 * Used by the cross-process single-flight test and the token benchmark.
 */
export function spawnCaller(script: string, env: Record<string, string>): Caller {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout });
  let readyResolve: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (readyResolve = resolve));
  const report = new Promise<CallerReport>((resolve, reject) => {
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as { ready?: boolean } | CallerReport;
      if ('ready' in msg) readyResolve();
      else resolve(msg as CallerReport);
    });
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}: ${stderr.slice(0, 500)}`)));
  });
  // A child that dies before it is ready must fail its caller, not hang it.
  report.catch(() => readyResolve());
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    ready,
    start: (at) => child.stdin.end(`${at}\n`),
    report,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
