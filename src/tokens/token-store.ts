import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';

/**
 * Obtains a credential at most once across processes, however many callers ask at once: the
 * stored value while it is fresh, else one mint (or refresh) by one caller in one process, that
 * everyone else waits for. Generic over the key (K), what callers get (V), what a mint returns
 * (M) and the row as a claim sees it (S); a kind of token plugs in its rows (TokenRows) and, per
 * call, its mint.
 *
 * - In the process: concurrent callers for one key share one lookup (single flight).
 * - Across processes: a short lease on the key's row, claimed in one statement before the mint,
 *   so no transaction stays open across the HTTP call and a process that dies mid-mint blocks the
 *   others only until its lease lapses. The claim answers the row as it is after the claim: the
 *   mint works from that, never from what was read before another process's mint landed (a
 *   refresh token is single-use).
 * - Failures are recorded on the row (the rows decide the backoff, or a terminal mark), and a
 *   stored value that is still usable is handed out meanwhile (stale-while-valid): a short outage
 *   of Lark's auth endpoint does not fail the callers.
 */

/** What the store must know of a row to decide: hand it out, wait, claim, or refuse. */
export interface RowState {
  /** holds a value before its refresh time: nothing to mint */
  fresh: boolean;
  /** holds a value valid long enough to be handed out while a refresh fails */
  usable: boolean;
  /** no mint may start now: a failure's backoff is running, or the row refuses for good */
  backing_off: boolean;
  /** another claim to mint it is live */
  leased: boolean;
}

/** One kind of token's rows, as the store uses them. Keys are log fields: they never hold a secret. */
export interface TokenRows<K extends object, V, M, S extends RowState> {
  /** The key's identity (single flight, and anything spread per key). */
  id(key: K): string;
  /**
   * The stored value while it is fresh, else undefined. `reread`: from the row itself, not from
   * what the process may hold of it.
   */
  readFresh(key: K, opts?: { reread?: boolean }): Promise<V | undefined>;
  /**
   * Claims the right to mint under `lease`, in one statement, unless a claim is live, the value is
   * fresh or the row backs off. Answers the row as it is after the claim, or undefined.
   */
  claim(key: K, lease: string): Promise<S | undefined>;
  /** The row now (why a claim was refused), or undefined when there is none. */
  read(key: K): Promise<S | undefined>;
  /** The value a row holds, or undefined when it holds none this process can open. */
  open(key: K, row: S): V | undefined;
  /** Drops a value this process cannot open, only if it is still the one in `row`. */
  discard(key: K, row: S): Promise<void>;
  /** Stores what the mint returned and ends the claim; answers what callers get. */
  store(key: K, minted: M, claimed: S, lease: string): Promise<V>;
  /**
   * Records a failed mint (count, class, backoff or a terminal mark) and ends the claim.
   * `serveStale`: whether a stored value still usable may be handed out despite `err`.
   */
  recordFailure(key: K, err: unknown, lease: string): Promise<{ serveStale: boolean }>;
  /** The error for callers when the row backs off and holds nothing usable. */
  unavailable(key: K, row: S): Error;
}

/** Mints (or refreshes) a value from the row as claimed; storing it, and the claim, are the store's. */
export type Mint<S, M> = (claimed: S) => Promise<M>;

/** A lookup's result; `refreshError` when the value is a still-usable one whose refresh failed. */
export interface Lookup<V> {
  value: V;
  refreshError?: unknown;
}

export interface ObtainOptions {
  /** The caller has just dropped a value Lark rejected: do not share a lookup that may have read it. */
  afterInvalidation?: boolean;
  /** Read the stored row whatever the process holds (the refresh cron: a due row is minted anew). */
  reread?: boolean;
}

/**
 * A caller holding a usable value waits this long at most for another process's mint before it
 * takes the stored value: normally the mint lands well within it and everyone gets the new value,
 * but a stuck or dead minter must not stall callers that have a perfectly good one.
 */
const STALE_WAIT_MS = 2_000;

/** Polling for another process's mint: from the first interval, doubling to the last. */
const MINT_POLL_MS = { first: 10, max: 100 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class TokenStore<K extends object, V, M, S extends RowState> {
  /** Per key: the lookup (stored value, else a mint) that concurrent callers share. */
  private readonly inflight = new Map<string, Promise<Lookup<V>>>();

  constructor(
    private readonly rows: TokenRows<K, V, M, S>,
    private readonly log: Logger,
  ) {}

  /**
   * The stored value while it is fresh, else a new one. Concurrent callers in this process share
   * one lookup (one read, at most one mint); other processes are kept to one mint by the claim in
   * acquire. A caller that has just invalidated the value starts a lookup of its own (one already
   * under way may have read the rejected value) and later callers share that one; so does one that
   * must read the row (`reread`).
   */
  obtain(key: K, mint: Mint<S, M>, opts: ObtainOptions = {}): Promise<Lookup<V>> {
    const id = this.rows.id(key);
    const shared = this.inflight.get(id);
    if (shared && !opts.afterInvalidation && !opts.reread) return shared;
    const pending: Promise<Lookup<V>> = (async () => {
      const fresh = await this.rows.readFresh(key, { reread: opts.reread });
      if (fresh !== undefined) return { value: fresh };
      return this.acquire(key, mint);
    })().finally(() => {
      if (this.inflight.get(id) === pending) this.inflight.delete(id);
    });
    this.inflight.set(id, pending);
    return pending;
  }

  /**
   * Claims the mint and mints; or, when another process holds the claim, waits for its value; or,
   * while the row backs off, hands out the stored value if it is still usable and refuses
   * otherwise.
   */
  private async acquire(key: K, mint: Mint<S, M>): Promise<Lookup<V>> {
    const lease = randomUUID();
    const started = performance.now();
    let poll = MINT_POLL_MS.first;
    for (;;) {
      const claimed = await this.rows.claim(key, lease);
      if (claimed) return this.mintClaimed(key, lease, claimed, mint);

      const row = await this.rows.read(key);
      if (!row) continue; // deleted between the two statements (a purge): claim a new row
      if (row.fresh) {
        const value = this.rows.open(key, row);
        if (value !== undefined) return { value };
        // A fresh value this process cannot open would block every claim until its refresh
        // time: drop it (only if it is still that one) and mint.
        await this.rows.discard(key, row);
        continue;
      }
      const stale = row.usable ? this.rows.open(key, row) : undefined;
      if (row.backing_off) {
        const err = this.rows.unavailable(key, row);
        if (stale !== undefined) return { value: stale, refreshError: err };
        throw err;
      }
      if (!row.leased) continue; // the other claim just ended: try to claim again
      // Another process is minting: its value is stored within moments, unless it is stuck or died.
      if (stale !== undefined && performance.now() - started >= STALE_WAIT_MS) return { value: stale };
      await sleep(poll);
      poll = Math.min(poll * 2, MINT_POLL_MS.max);
    }
  }

  /** Holding the claim: mint, store and release; on failure record it (backoff) and release. */
  private async mintClaimed(key: K, lease: string, claimed: S, mint: Mint<S, M>): Promise<Lookup<V>> {
    try {
      const minted = await mint(claimed);
      return { value: await this.rows.store(key, minted, claimed, lease) };
    } catch (err) {
      const { serveStale } = await this.rows.recordFailure(key, err, lease);
      const stale = serveStale && claimed.usable ? this.rows.open(key, claimed) : undefined;
      if (stale === undefined) throw err;
      const fields: Record<string, unknown> = { ...key, err: (err as Error).message };
      this.log.warn(fields, 'token refresh failed; the stored token is used until it is refreshed or expires');
      return { value: stale, refreshError: err };
    }
  }
}
