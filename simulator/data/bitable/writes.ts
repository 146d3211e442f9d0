/**
 * The state of Base record writes in one tenant (../shared/lark/bitable-writes.md §6,
 * corrections.md): which write calls are in progress on each Base (Lark allows one at a time per
 * Base; a second answers 1254291), what each client_token was first answered, counters for tests
 * and benchmarks, and injected faults. The routes live in write-routes.ts.
 */

/** The six record write APIs, by the last part of their admit() names (`bitable.records.<api>`). */
export type WriteApi = 'create' | 'update' | 'delete' | 'batch_create' | 'batch_update' | 'batch_delete';

export const WRITE_APIS: readonly WriteApi[] = ['create', 'update', 'delete', 'batch_create', 'batch_update', 'batch_delete'];

/** Simulator-wide write behaviour (SimData's `bitableWrites`; change it at any time). */
export interface BitableWriteOptions {
  /**
   * How long a write call takes, from its arrival to its answer, holding its Base (ms): the
   * simulator's own work on the call is part of it, not added. Lark answers a small batch in
   * roughly 100–300 ms; 150 is the default. Real time, not the simulated clock.
   */
  latencyMs: number;
  /** Added to `latencyMs` per record in the call (default 0). */
  perRecordLatencyMs: number;
  /**
   * 1254607 "data not ready" (HTTP 400) for a call whose weight is over either threshold: cells
   * (the number of field values in the body, i.e. records × fields for uniform records) or bytes
   * (the JSON size of the records). Lark has no published threshold; the defaults (20,000 cells,
   * 4 MiB) let a 1,000-record batch of up to 20 fields through.
   */
  maxBatchCells: number;
  maxBatchBytes: number;
  /** 1254103 "too many records" when a create would take a table past this (plan dependent; default: no limit). */
  maxTableRecords: number;
  /** upload_all's file size limit (20 MB, the upload_all page's 20,971,520 bytes). */
  mediaMaxBytes: number;
  /**
   * Whether DELETE and batch_delete honour a client_token. The docs list client_token only on
   * create and batch_create (and the SDK on batch_update); the simulator also honours it on the
   * single PUT update. On deletes Lark's handling is not documented, so by default the simulator
   * ignores the parameter there (a retried delete then answers 1254043 for records already gone).
   */
  clientTokenOnDeletes: boolean;
}

export const defaultBitableWriteOptions: BitableWriteOptions = {
  latencyMs: 150,
  perRecordLatencyMs: 0,
  maxBatchCells: 20_000,
  maxBatchBytes: 4 * 1024 * 1024,
  maxTableRecords: Number.POSITIVE_INFINITY,
  mediaMaxBytes: 20 * 1024 * 1024,
  clientTokenOnDeletes: false,
};

/** Counters of one Base's write calls (live object: read it after the calls). */
export interface BaseWriteStats {
  /** Write calls that reached the Base (token, rate limit and table checks passed). */
  calls: number;
  /**
   * Calls that arrived while another write call on the same Base was in progress, whatever they
   * were answered (1254291, 1254608, or applied under ignore_consistency_check). A client that
   * keeps to "one write call at a time per Base" leaves this at 0.
   */
  overlaps: number;
  /** Calls answered 1254291 "write conflict" because another write call held the Base. */
  conflicts: number;
  /** Calls answered 1254608 (their client_token was still in progress in another call). */
  duplicateSubmits: number;
  /** Write calls in progress now, and the most at once so far. */
  inFlight: number;
  maxInFlight: number;
  /** Calls that changed data (replays and failures not counted). */
  applied: number;
  /** Calls answered from an earlier call with the same client_token (nothing written again). */
  replays: number;
  /** Records created + updated + deleted by applied calls. */
  recordsWritten: number;
  recordsCreated: number;
  recordsUpdated: number;
  recordsDeleted: number;
  /** Records in each call's body (calls whose body was well formed), in arrival order. */
  batchSizes: number[];
  /** Calls answered 1254607 for their weight. */
  notReady: number;
  /** Calls answered 1255040 (injected timeouts; the write was applied first). */
  timeouts: number;
  /**
   * For a call that found the Base free: how long the Base had been free since the previous
   * call's answer (ms), in arrival order. What a client loses between its calls (the first call
   * after a reset has none).
   */
  idleGapsMs: number[];
  /** When the first call reached the Base (epoch ms; 0: none yet). */
  firstCallAt: number;
}

export function emptyWriteStats(): BaseWriteStats {
  return {
    calls: 0,
    overlaps: 0,
    conflicts: 0,
    duplicateSubmits: 0,
    inFlight: 0,
    maxInFlight: 0,
    applied: 0,
    replays: 0,
    recordsWritten: 0,
    recordsCreated: 0,
    recordsUpdated: 0,
    recordsDeleted: 0,
    batchSizes: [],
    notReady: 0,
    timeouts: 0,
    idleGapsMs: [],
    firstCallAt: 0,
  };
}

/** Sums several Bases' counters (batch sizes concatenated, maxInFlight the largest). */
export function sumWriteStats(all: Iterable<BaseWriteStats>): BaseWriteStats {
  const out = emptyWriteStats();
  for (const s of all) {
    for (const k of Object.keys(out) as Array<keyof BaseWriteStats>) {
      if (k === 'batchSizes' || k === 'idleGapsMs') out[k].push(...s[k]);
      else if (k === 'maxInFlight') out.maxInFlight = Math.max(out.maxInFlight, s.maxInFlight);
      else if (k === 'firstCallAt') out.firstCallAt = out.firstCallAt === 0 ? s.firstCallAt : Math.min(out.firstCallAt, s.firstCallAt || out.firstCallAt);
      else out[k] += s[k];
    }
  }
  return out;
}

/**
 * A fault for the next matching write call(s).
 * - code 1255040: the call is carried out (written, its client_token remembered), then answered
 *   HTTP 504 `{code: 1255040}` after `holdMs` more (default 0): the answer that never came back in
 *   time. A retry with the same client_token gets the first result.
 * - any other code (1254607, 1254290, 1254291, 1254002, 1255001, …): answered instead of the write
 *   (nothing written), after the call's latency, with `status` (default: the documented status of
 *   the code, else 200).
 */
export interface WriteFault {
  code: number;
  /** Only calls on this Base (default any). */
  appToken?: string;
  /** Only these APIs (default any write API). */
  api?: WriteApi | WriteApi[];
  count?: number;
  holdMs?: number;
  status?: number;
  msg?: string;
}

/** What a client_token was first answered (its `data`), and the request it belonged to. */
interface TokenEntry {
  fingerprint: string;
  data: unknown;
}

export interface InFlightCall {
  api: WriteApi;
  clientToken: string | undefined;
}

export class BitableWriteState {
  private readonly stats = new Map<string, BaseWriteStats>();
  private readonly inFlight = new Map<string, Set<InFlightCall>>();
  private readonly tokens = new Map<string, TokenEntry>();
  private readonly faults: Array<WriteFault & { remaining: number }> = [];
  /** When each Base's last write call left it (performance.now()), for idleGapsMs. */
  private readonly freedAt = new Map<string, number>();

  /** The counters of one Base (created at zero on first use). */
  statsOf(appToken: string): BaseWriteStats {
    let s = this.stats.get(appToken);
    if (!s) {
      s = emptyWriteStats();
      this.stats.set(appToken, s);
    }
    return s;
  }

  allStats(): Map<string, BaseWriteStats> {
    return this.stats;
  }

  resetStats(): void {
    for (const [k, s] of this.stats) {
      const fresh = emptyWriteStats();
      fresh.inFlight = s.inFlight;
      this.stats.set(k, fresh);
    }
    this.freedAt.clear();
  }

  /** The write calls in progress on a Base. */
  running(appToken: string): Set<InFlightCall> {
    let set = this.inFlight.get(appToken);
    if (!set) {
      set = new Set();
      this.inFlight.set(appToken, set);
    }
    return set;
  }

  /** A call enters its Base; `arrivedAt` (performance.now()): when its request arrived. */
  enter(appToken: string, call: InFlightCall, arrivedAt = performance.now()): void {
    const s = this.statsOf(appToken);
    const freed = this.freedAt.get(appToken);
    if (this.running(appToken).size === 0 && freed !== undefined) s.idleGapsMs.push(Math.max(0, arrivedAt - freed));
    if (s.firstCallAt === 0) s.firstCallAt = Date.now() - (performance.now() - arrivedAt);
    this.running(appToken).add(call);
    s.inFlight += 1;
    s.maxInFlight = Math.max(s.maxInFlight, s.inFlight);
  }

  leave(appToken: string, call: InFlightCall): void {
    if (!this.running(appToken).delete(call)) return;
    const s = this.statsOf(appToken);
    s.inFlight -= 1;
    if (s.inFlight === 0) this.freedAt.set(appToken, performance.now());
  }

  token(key: string): TokenEntry | undefined {
    return this.tokens.get(key);
  }

  remember(key: string, fingerprint: string, data: unknown): void {
    this.tokens.set(key, { fingerprint, data: structuredClone(data) });
  }

  inject(fault: WriteFault): void {
    this.faults.push({ ...fault, remaining: fault.count ?? 1 });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Consumes the first fault matching a call, if any. */
  takeFault(appToken: string, api: WriteApi): WriteFault | undefined {
    const f = this.faults.find((x) => {
      if (x.remaining <= 0 || (x.appToken !== undefined && x.appToken !== appToken)) return false;
      if (x.api === undefined) return true;
      return Array.isArray(x.api) ? x.api.includes(api) : x.api === api;
    });
    if (!f) return undefined;
    f.remaining -= 1;
    return f;
  }
}
