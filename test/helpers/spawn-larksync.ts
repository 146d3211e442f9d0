import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ChildLarksync {
  child: ChildProcess;
  url: string;
  /** Everything the child logged (for "no secret in logs" and debugging). */
  lines: string[];
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `src/server.ts` as a real OS process with the given environment and waits until it listens. */
export async function spawnLarksync(env: Record<string, string>, timeoutMs = 30_000): Promise<ChildLarksync> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: process.cwd(),
    env: { ...process.env, ...env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: env.LOG_LEVEL ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child larksync did not start in ${timeoutMs} ms:\n${lines.join('')}`)), timeoutMs);
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      lines.push(line + '\n');
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'larksync is listening' && entry.url) {
          clearTimeout(timer);
          resolve(entry.url);
        }
      } catch {
        // not a JSON log line
      }
    });
    child.stderr!.on('data', (d: Buffer) => lines.push(String(d)));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`child larksync exited (${code}) before listening:\n${lines.join('')}`));
    });
  });
  return {
    child,
    url,
    lines,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}
