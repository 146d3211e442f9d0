/**
 * Benchmarks run the measured programs (larksync, the simulator, a baseline) as separate OS
 * processes, so each one's peak RSS and CPU time can be read from /proc and none shares an event
 * loop with another. This is the small request/answer protocol over the IPC channel of `fork`.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/**
 * Inside node_modules, so the compiled files resolve their packages as the sources do; named for
 * the checkout, because worktrees may share one node_modules and must not run each other's build.
 */
const BUILD_DIR = path.join(ROOT, 'node_modules', '.cache', `larksync-bench-${path.basename(ROOT)}`);

/**
 * The glibc allocator settings the production image sets (Dockerfile, `MALLOC_*` in its ENV), for
 * a bench that runs larksync as it is deployed. Read from the Dockerfile, so there is one place
 * that says them.
 */
export function deployedMallocEnv(): Record<string, string> {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  return Object.fromEntries([...text.matchAll(/^\s*(?:ENV\s+)?(MALLOC_[A-Z_]+)=(\S+?)\s*\\?$/gm)].map((m) => [m[1]!, m[2]!]));
}

/**
 * Compiles bench children (and everything they import) to JavaScript, as `npm run build` does for
 * production: run under tsx, a process carries tsx's loader thread (about 40 MB of RSS) and its
 * transform work, which production does not. Type checking is skipped (`npm run typecheck` does
 * that); the output goes to node_modules/.cache/larksync-bench.
 */
export async function compileChildren(scripts: string[]): Promise<void> {
  await mkdir(BUILD_DIR, { recursive: true });
  const tsconfig = {
    extends: path.join(ROOT, 'tsconfig.json'),
    compilerOptions: {
      noEmit: false,
      sourceMap: false,
      noCheck: true,
      rootDir: ROOT,
      outDir: BUILD_DIR,
    },
    include: [],
    files: scripts.map((s) => path.join(ROOT, s)),
  };
  const project = path.join(BUILD_DIR, 'tsconfig.json');
  await writeFile(project, JSON.stringify(tsconfig, null, 2));
  // A build that emits nothing must not leave an older one to be run instead.
  await Promise.all(scripts.map((s) => rm(compiled(s), { force: true })));
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  // tsc exits non-zero on any diagnostic (a concurrent edit elsewhere); what counts is the output.
  await promisify(execFile)(process.execPath, [tsc, '-p', project]).catch(() => undefined);
  for (const s of scripts) {
    if (!existsSync(compiled(s))) throw new Error(`compiling ${s} produced no ${compiled(s)}`);
  }
  // What the compiler does not emit (the web pages' templates and static files), as
  // scripts/copy-assets.mjs does for the production build.
  for (const dir of ['src/web/views', 'src/web/public']) {
    if (existsSync(path.join(ROOT, dir))) await cp(path.join(ROOT, dir), path.join(BUILD_DIR, dir), { recursive: true });
  }
}

const compiled = (script: string) => path.join(BUILD_DIR, script.replace(/\.ts$/, '.js'));

interface Request {
  id: number;
  cmd: string;
  args: unknown;
}
type Answer = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

export interface BenchChild {
  pid: number;
  /** Asks the child to run one of its handlers and resolves with what it returned. */
  call<T>(cmd: string, args?: unknown): Promise<T>;
  /** Everything the child wrote to stdout and stderr (for error messages). */
  output: string[];
  /** Asks the child to exit, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a child with an IPC channel and waits for its `ready` message: the compiled script when
 * compileChildren() built it, else the TypeScript source under tsx.
 */
export async function forkChild(script: string, env: Record<string, string>, nodeArgs: string[] = [], timeoutMs = 60_000): Promise<BenchChild> {
  const js = compiled(script);
  const child: ChildProcess = fork(existsSync(js) ? js : path.join(ROOT, script), [], {
    cwd: ROOT,
    execArgv: existsSync(js) ? nodeArgs : ['--import', 'tsx', ...nodeArgs],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const output: string[] = [];
  child.stdout?.on('data', (c: Buffer) => output.push(c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => output.push(c.toString('utf8')));
  // 'close' rather than 'exit': by then everything the child wrote has been read.
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 1;

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} was not ready within ${timeoutMs} ms:\n${output.join('')}`));
    }, timeoutMs);
    child.on('message', (m: unknown) => {
      if ((m as { ready?: boolean }).ready) {
        clearTimeout(timer);
        resolve();
        return;
      }
      const a = m as Answer;
      const p = pending.get(a.id);
      if (!p) return;
      pending.delete(a.id);
      if (a.ok) p.resolve(a.value);
      else p.reject(new Error(`${script} ${a.error}`));
    });
    void exited.then(() => {
      clearTimeout(timer);
      const err = new Error(`${script} exited (${child.exitCode ?? child.signalCode}):\n${output.join('').slice(-4000)}`);
      reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    });
  });

  return {
    pid: child.pid ?? -1,
    output,
    call<T>(cmd: string, args?: unknown): Promise<T> {
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, cmd, args } satisfies Request);
      });
    },
    async stop(graceMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ id: 0, cmd: 'exit', args: null } satisfies Request);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * The child's side: answers requests with these handlers; `exit` runs `onExit` and ends the
 * process. Call once the child is ready to be used.
 */
export function serveParent(handlers: Record<string, (args: never) => Promise<unknown>>, onExit: () => Promise<void>): void {
  if (!process.send) throw new Error('this script is a benchmark child: start it with forkChild()');
  process.on('message', (m: Request) => {
    void (async () => {
      if (m.cmd === 'exit') {
        await onExit().catch(() => undefined);
        process.exit(0);
      }
      const handler = handlers[m.cmd];
      try {
        if (!handler) throw new Error(`unknown command ${m.cmd}`);
        const value = await handler(m.args as never);
        process.send?.({ id: m.id, ok: true, value } satisfies Answer);
      } catch (err) {
        process.send?.({ id: m.id, ok: false, error: `${m.cmd}: ${(err as Error).message}` } satisfies Answer);
      }
    })();
  });
  // The parent died: do not linger.
  process.on('disconnect', () => void onExit().finally(() => process.exit(0)));
  process.send({ ready: true });
}
