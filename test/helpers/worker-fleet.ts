import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { spawnLarksync, type ChildStartOptions, type LarksyncProcess } from './larksync-process.js';

/**
 * Start options for processes that get killed: a dead slice is noticed and re-leased after 1.5 s
 * and a dead worker's job and queue locks are released after 3 s, instead of the production 15 s.
 *
 * The dead-worker threshold stays well above a slice's length (0.8 s plus a page): were a live
 * process's lock ever taken for dead (see live-worker-locks.test.ts), a slice outliving the
 * threshold would run twice at once and the chaos test would report that, not the kills.
 */
export const FAST_RESUME: ChildStartOptions = {
  workerOptions: { cron: false, maintenanceMs: 250, staleRunAfterMs: 1_500, deadWorkerAfterMs: 3_000 },
  engineOptions: { heartbeatMs: 300, sliceMs: 800 },
  rateLimitScale: 50,
  workerPollInterval: 100,
};

export interface Holder {
  proc: LarksyncProcess;
  runId: string;
}

/**
 * A set of larksync worker processes on one database (real OS processes), kept at a target size:
 * tests SIGKILL members and spawn replacements, as an orchestrator restarting crashed pods would.
 */
export class WorkerFleet {
  private readonly live: LarksyncProcess[] = [];
  private readonly spawning = new Set<Promise<void>>();
  private readonly pools = new Map<LarksyncProcess, Set<string>>();
  /** Every process ever started, for the log dump of a failing test. */
  readonly all: LarksyncProcess[] = [];
  spawned = 0;

  constructor(
    private readonly env: Record<string, string>,
    private readonly db: Kysely<Database>,
    private readonly size: number,
    private readonly start: ChildStartOptions = FAST_RESUME,
  ) {}

  get alive(): LarksyncProcess[] {
    return [...this.live];
  }

  /** Spawns processes until the fleet has its size again; resolves when they listen. */
  async fill(): Promise<void> {
    const missing = this.size - this.live.length - this.spawning.size;
    for (let i = 0; i < missing; i += 1) {
      const p = spawnLarksync(this.env, 30_000, { start: this.start }).then((proc) => {
        this.spawned += 1;
        this.all.push(proc);
        this.live.push(proc);
      });
      this.spawning.add(p);
      void p.finally(() => this.spawning.delete(p)).catch(() => undefined);
    }
    await Promise.all([...this.spawning]);
  }

  /** The worker pool ids a process announced (all of them before it listens: larksync-child.ts). */
  poolIdsOf(proc: LarksyncProcess): ReadonlySet<string> {
    let ids = this.pools.get(proc);
    if (!ids) {
      const line = /"poolIds":(\[[^\]]*\])[^\n]*"msg":"test: worker pools"/.exec(proc.output.join(''));
      if (!line) return new Set();
      ids = new Set(JSON.parse(line[1]!) as string[]);
      this.pools.set(proc, ids);
    }
    return ids;
  }

  /** Live processes that hold a sync_run job right now, with the run of that job. */
  async holders(): Promise<Holder[]> {
    const res = await sql<{ locked_by: string; run_id: string }>`
      select j.locked_by, j.payload->>'runId' as run_id
        from graphile_worker._private_jobs j
        join graphile_worker._private_tasks t on t.id = j.task_id
       where t.identifier = 'sync_run' and j.locked_by is not null`.execute(this.db);
    const out: Holder[] = [];
    for (const r of res.rows) {
      const proc = this.live.find((p) => this.poolIdsOf(p).has(r.locked_by));
      if (proc) out.push({ proc, runId: r.run_id });
    }
    return out;
  }

  /** SIGKILLs members (a crash: no cleanup, no goodbye to the database) and forgets them. */
  async kill(victims: LarksyncProcess[]): Promise<void> {
    for (const v of victims) {
      const i = this.live.indexOf(v);
      if (i >= 0) this.live.splice(i, 1);
    }
    await Promise.all(victims.map((v) => v.kill('SIGKILL')));
  }

  /** Log lines containing `text`, over every process ever started. */
  logCount(text: string): number {
    return this.all.reduce((n, p) => n + p.output.join('').split('\n').filter((l) => l.includes(text)).length, 0);
  }

  /** The last lines of every process's output, for a failure message. */
  tail(lines = 15): string {
    return this.all
      .map((p) => `--- pid ${p.child.pid}\n${p.output.join('').trimEnd().split('\n').slice(-lines).join('\n')}`)
      .join('\n');
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.spawning]);
    await Promise.all(this.live.splice(0).map((p) => p.kill('SIGKILL')));
  }
}
