import pg from 'pg';
import { waitFor } from './wait.js';

/**
 * Gates: row triggers that make a chosen statement of larksync wait, mid-transaction, until the
 * test lets it through. A test closes a gate (holds an advisory lock), waits until a backend is
 * parked at it, and so can crash the process at an exact point of a commit (say, after the
 * deletion sweep marked rows but before the checkpoint was written) instead of at a random time.
 *
 * Only for a test's own database: the triggers are dropped by `remove()`.
 */
export interface GateSpec {
  /** trigger name, also the label in messages */
  name: string;
  table: string;
  /** e.g. `before update`, `before delete` */
  timing: string;
  /** trigger WHEN condition over OLD/NEW */
  when?: string;
}

const FUNCTION = 'larksync_test_gate';

export class DbGates {
  private readonly keys = new Map<string, number>();
  private readonly closed = new Set<string>();

  private constructor(
    private readonly client: pg.Client,
    private readonly specs: GateSpec[],
  ) {}

  /** Installs the triggers (open: they let everything through until `close`). */
  static async install(url: string, specs: GateSpec[]): Promise<DbGates> {
    const client = new pg.Client({ connectionString: url, application_name: 'larksync-test-gates' });
    await client.connect();
    const gates = new DbGates(client, specs);
    await client.query(`
      create or replace function ${FUNCTION}() returns trigger language plpgsql as $$
      begin
        -- Waits while the test holds this gate's lock exclusively; costs nothing when open.
        perform pg_advisory_xact_lock_shared(tg_argv[0]::bigint);
        if tg_op = 'DELETE' then return old; end if;
        return new;
      end $$`);
    specs.forEach((s, i) => gates.keys.set(s.name, 77_000 + i));
    for (const s of specs) {
      await client.query(
        `create trigger ${s.name} ${s.timing} on ${s.table} for each row ${s.when ? `when (${s.when})` : ''}
         execute function ${FUNCTION}('${gates.key(s.name)}')`,
      );
    }
    return gates;
  }

  private key(name: string): number {
    const k = this.keys.get(name);
    if (k === undefined) throw new Error(`no gate ${name}`);
    return k;
  }

  async close(name: string): Promise<void> {
    await this.client.query('select pg_advisory_lock($1)', [this.key(name)]);
    this.closed.add(name);
  }

  async open(name: string): Promise<void> {
    if (!this.closed.delete(name)) return;
    await this.client.query('select pg_advisory_unlock($1)', [this.key(name)]);
  }

  /** Backend pids parked at a gate, in this test's database only (pg_locks spans the server). */
  async waiting(name: string): Promise<number[]> {
    const res = await this.client.query<{ pid: number }>(
      `select pid from pg_locks where locktype = 'advisory' and not granted and classid = 0 and objid = $1 and objsubid = 1
          and database = (select oid from pg_database where datname = current_database())`,
      [this.key(name)],
    );
    return res.rows.map((r) => r.pid);
  }

  /** Resolves with the name of the first closed gate a backend is parked at. */
  async parked(names: string[], timeoutMs: number): Promise<{ gate: string; pids: number[] }> {
    return waitFor(
      async () => {
        for (const name of names) {
          const pids = await this.waiting(name);
          if (pids.length > 0) return { gate: name, pids };
        }
        return undefined;
      },
      timeoutMs,
      `a backend parked at one of ${names.join(', ')}`,
    );
  }

  /**
   * Ends backends whose client process was killed. Postgres would notice the closed socket only
   * when the parked statement finishes; ending them now rolls their transaction back at once,
   * which is what happens to any transaction whose client dies before COMMIT.
   */
  async terminate(pids: number[]): Promise<void> {
    for (const pid of pids) await this.client.query('select pg_terminate_backend($1)', [pid]);
    await waitFor(
      async () => {
        const res = await this.client.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = any($1::int[])', [pids]);
        return res.rows[0]?.n === 0;
      },
      5_000,
      'terminated backends to exit',
    );
  }

  /** Opens every gate and drops the triggers and function. */
  async remove(): Promise<void> {
    for (const name of [...this.closed]) await this.open(name);
    for (const s of this.specs) await this.client.query(`drop trigger if exists ${s.name} on ${s.table}`);
    await this.client.query(`drop function if exists ${FUNCTION}()`);
    await this.client.end();
  }
}
