import type { TSchema } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Confirmation, SweepRequest } from './deletions.js';
import type { StreamReads } from './stream-reads.js';
import type { StreamName, StreamRow } from './streams.js';
import type { SyncLarkClient } from './sync-lark-client.js';
import type { ItemError, SyncMode, SyncModuleName } from './sync.tables.js';

/** What a phase gets: its run, its config, Lark, a log, and read access to what the run stored. */
export interface SyncContext<C = unknown> {
  tenantKey: string;
  appKind: 'store' | 'custom';
  runId: string;
  mode: SyncMode;
  config: C;
  lark: SyncLarkClient;
  log: Logger;
  read: StreamReads;
}

/** Rows of a parent whose children are replaced wholesale (an approval instance's fields). */
export interface ChildScope {
  stream: StreamName;
  column: string;
  value: string;
  keys: string[];
}

export interface PageResult<S> {
  rows: Partial<Record<StreamName, StreamRow[]>>;
  /** Children not listed under their parent anymore are soft-deleted. */
  replaceChildren?: ChildScope[];
  /** The checkpoint after this page, committed with its rows. */
  state: S;
  /** This phase is finished for the run. */
  done: boolean;
  /**
   * Partitions this page completes a full listing of. Rows of those partitions the run did not
   * see become deletion candidates, judged as the request says (see deletions.ts): never marked
   * deleted on one listing alone. A phase that saw an incomplete listing asks for nothing.
   */
  sweep?: SweepRequest[];
  /** The phase's direct read of deletion candidates (`confirmBy: 'read'`). */
  confirm?: Confirmation[];
  /**
   * Items (a table, an approval code, a department) that failed while the phase went on; the run
   * ends `partial`. Recorded on the run with this page.
   */
  itemErrors?: ItemError[];
}

/**
 * One step of a module, Singer/Airbyte style: a resumable reader with small JSON state. `init`
 * starts a run from the long-lived cursor of the previous run; `readPage` does one upstream page
 * and never writes to the database itself (the engine commits rows and state together).
 */
export interface SyncPhase<S extends object = Record<string, unknown>, C = unknown> {
  name: string;
  /** Streams whose keys are recorded for deletion sweeps. */
  tracksDeletions?: StreamName[];
  /**
   * `previous` is the last committed state of this phase, which may be mid-pass (a failed or
   * cancelled run): keep the long-lived cursor in it, and decide whether to resume or start over.
   */
  init(ctx: SyncContext<C>, previous: S | undefined): S | Promise<S>;
  readPage(ctx: SyncContext<C>, state: S): Promise<PageResult<S>>;
  /**
   * Opt-in read-ahead: true when the page after `state` may be read while the page that produced
   * `state` is still being committed, i.e. that read depends on nothing but `state` and upstream
   * (not on rows or seen keys of earlier pages). The engine then reads up to
   * EngineOptions.readAhead pages ahead of its commits and lets two page transactions overlap; a
   * page read ahead still commits after the page before it, with its own checkpoint, and is
   * dropped if the slice stops (cancel, lost lease, failure) before it is committed.
   */
  canReadAhead?(state: S): boolean;
}

export interface SyncModuleDef<C = unknown> {
  name: SyncModuleName;
  streams: StreamName[];
  configSchema: TSchema;
  /** Warnings shown when a connector is configured (e.g. attendance on a store app). */
  warnings(config: C, appKind: 'store' | 'custom'): string[];
  /**
   * Scheduled runs are full passes this often (hours), incremental otherwise; unset: always
   * incremental. On-demand runs choose their mode themselves.
   */
  fullPassEveryHours?: number;
  /** Throws a SyncError when this tenant cannot run the module at all. */
  precheck?(ctx: SyncContext<C>): void;
  phases: Array<SyncPhase<PhaseState, C>>;
}

export type PhaseState = Record<string, unknown>;

/** Lets each phase keep its own state type while a module lists them side by side. */
export function definePhase<S extends object, C>(phase: SyncPhase<S, C>): SyncPhase<PhaseState, C> {
  return phase as unknown as SyncPhase<PhaseState, C>;
}
