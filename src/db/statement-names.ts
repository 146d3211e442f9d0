import { createHash } from 'node:crypto';
import pg from 'pg';

/**
 * Named (server-side prepared) statements for the queries this process repeats, as JDBC's
 * `prepareThreshold` does. Kysely sends every query unnamed, so Postgres parses and plans its text
 * again at each call; for the CTE-heavy statements of the change-event path (the webhook fan-out,
 * a lane's read, feed reads) planning cost a third of their Postgres time in
 * `npm run bench -- realtime` (9.4 s of planning beside 16.9 s of execution). A text seen
 * THRESHOLD times is sent with a name from then on: pg parses it once per connection, and
 * Postgres keeps its plan (a generic one only where its own cost check finds it no worse).
 *
 * Left unnamed:
 * - statements without parameters (BEGIN, COMMIT, SET): the simple protocol is cheaper there;
 * - texts with a star expansion (`select *`, `t.*`, `returning *`): a column added by a migration
 *   while this process runs would change their result type, which a prepared statement refuses
 *   ("cached plan must not change result type") for as long as its connection lives;
 * - texts seldom repeated (values inlined by sql.raw, IN lists of varying length), which never
 *   reach the threshold, and anything past MAX_NAMED distinct texts.
 * A statement that fails anyway for its result type is sent unnamed from then on; and a server
 * that forgets named statements (a pooler in transaction mode answers "prepared statement does not
 * exist") turns naming off for the process. Either failure costs the one call that met it.
 */
const THRESHOLD = 3;
const MAX_NAMED = 1_000;
const MAX_COUNTED = 10_000;

/**
 * `*` standing for columns: right after `select` (or `select distinct`), `returning` or a comma, or
 * after `alias.`. Not count(*), nor a product (`x * 1000`, `b - a) * (select …)`): an operand comes
 * before that star, and a text holding one used to be left unnamed too, so Postgres planned the
 * webhook lane's statements again at every call (0.9 ms of planning beside 0.6 ms of execution for
 * a delivered attempt, in `npm run bench -- realtime`). Missed: `select distinct on (…) *`.
 */
const STAR_EXPANSION = /(?:\b(?:select(?:\s+distinct)?|returning)\s+|,\s*|(?:[A-Za-z_][\w$]*|"[^"]+")\.)\*/i;

export class StatementNames {
  private readonly counts = new Map<string, number>();
  private readonly names = new Map<string, string>();
  private readonly refused = new Set<string>();
  private off = false;

  /** The name to send `text` under, or undefined to send it unnamed. */
  nameFor(text: string): string | undefined {
    if (this.off) return undefined;
    const named = this.names.get(text);
    if (named !== undefined) return named;
    if (this.names.size >= MAX_NAMED || this.refused.has(text)) return undefined;
    const seen = (this.counts.get(text) ?? 0) + 1;
    if (seen < THRESHOLD) {
      if (this.counts.size >= MAX_COUNTED) this.counts.clear();
      this.counts.set(text, seen);
      return undefined;
    }
    this.counts.delete(text);
    // Judged once, when the text first qualifies: a star text repeated at every call (a lookup by
    // key) then costs a set lookup, not the pattern.
    if (STAR_EXPANSION.test(text)) {
      this.refuse(text);
      return undefined;
    }
    const name = `larksync_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    this.names.set(text, name);
    return name;
  }

  /** A named statement failed: what the error says about naming it (or any statement) again. */
  failed(text: string, err: unknown): void {
    const e = err as { code?: unknown; message?: unknown };
    if (e?.code === '26000') {
      this.off = true;
    } else if (e?.code === '0A000' && typeof e.message === 'string' && e.message.includes('cached plan must not change result type')) {
      this.names.delete(text);
      this.refuse(text);
    }
  }

  /** Never named again (bounded like the counts: past the cap, a text is judged afresh). */
  private refuse(text: string): void {
    if (this.refused.size >= MAX_COUNTED) this.refused.clear();
    this.refused.add(text);
  }
}

/**
 * A pg Client class whose `query(text, values)` calls (Kysely's form) go through `names`. Every
 * other form (a config object, a cursor, a callback, no values) passes through untouched.
 */
export function namingClient(names: StatementNames): typeof pg.Client {
  class NamingClient extends pg.Client {}
  const plain = pg.Client.prototype.query;
  NamingClient.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const [text, values] = args;
    if (args.length === 2 && typeof text === 'string' && Array.isArray(values) && values.length > 0) {
      const name = names.nameFor(text);
      if (name !== undefined) {
        return (plain as (config: pg.QueryConfig) => Promise<pg.QueryResult>).call(this, { name, text, values }).catch((err: unknown) => {
          names.failed(text, err);
          throw err;
        });
      }
    }
    return (plain as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof plain;
  return NamingClient;
}
