import type { TSchema } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { Logger } from 'pino';
import type { Confirmation, SweepRequest } from './deletions.js';
import type { StreamReads } from './stream-reads.js';
import type { ModuleForm } from './module-form.js';
import type { RateLimit } from './pacer.js';
import type { StreamDef, StreamName, StreamRow } from './streams.js';
import type { SyncLarkClient } from './sync-lark-client.js';
import type { ItemError, SyncMode } from './sync.tables.js';

/** What a phase gets: its run, its config, Lark, a log, and read access to what the run stored. */
export interface SyncContext<C = unknown, R = unknown> {
  tenantKey: string;
  appKind: 'store' | 'custom';
  runId: string;
  mode: SyncMode;
  config: C;
  lark: SyncLarkClient;
  log: Logger;
  read: StreamReads;
  /** The module's own reads of what it stored (SyncModuleDef.reads), bound to this tenant. */
  moduleReads: R;
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
  /**
   * Set by the engine, not by phases: the number of the read this page came from, drawn before
   * its first call (read-seq.ts). Rows, children and deletions of the page yield to newer reads.
   */
  readSeq?: string;
}

/**
 * One step of a module, Singer/Airbyte style: a resumable reader with small JSON state. `init`
 * starts a run from the long-lived cursor of the previous run; `readPage` does one upstream page
 * and never writes to the database itself (the engine commits rows and state together).
 */
export interface SyncPhase<S extends object = Record<string, unknown>, C = unknown, R = unknown> {
  name: string;
  /**
   * The shape of this phase's checkpoint. A stored state that does not match (an older version, a
   * hand edit) is not resumed: the phase starts afresh with `init(ctx, undefined)`.
   */
  stateSchema: TSchema;
  /** Streams whose keys are recorded for deletion sweeps. */
  tracksDeletions?: StreamName[];
  /**
   * `previous` is the last committed state of this phase, which may be mid-pass (a failed or
   * cancelled run): keep the long-lived cursor in it, and decide whether to resume or start over.
   */
  init(ctx: SyncContext<C, R>, previous: S | undefined): S | Promise<S>;
  readPage(ctx: SyncContext<C, R>, state: S): Promise<PageResult<S>>;
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

/**
 * A module describes itself: its streams (tables, columns, types), the Lark APIs it calls with
 * their rate limits, its config schema and its phases with their state schemas. The engine, the
 * records API, the pacer and retention take all of that from the registry (connectors/index.ts),
 * so adding a module is its folder, one registry line and its migration.
 */
export interface SyncModuleDef<C = unknown, R = unknown> {
  /** public name (connector URLs, run rows) */
  name: string;
  /** public stream names (one table each, created by the module's migration) */
  streams: Readonly<Record<string, StreamDef>>;
  /**
   * Every Lark API the phases call (`ctx.lark.call(api, …)`), with its frequency limit. An API
   * declared by two modules must have the same limit (they share one budget).
   */
  limits: Readonly<Record<string, RateLimit>>;
  configSchema: TSchema;
  /** Its settings on the tenant admin page. */
  form: ModuleForm;
  /** Warnings shown when a connector is configured (e.g. attendance on a store app). */
  warnings(config: C, appKind: 'store' | 'custom'): string[];
  /**
   * Scheduled runs are full passes this often (hours), incremental otherwise; unset: always
   * incremental. On-demand runs choose their mode themselves.
   */
  fullPassEveryHours?: number;
  /**
   * Lark scopes a user must grant for this module to read as that user (identity { user }), asked
   * for by sign-in links made for a tenant with the module enabled. They must also be enabled on
   * the app in Lark's console: asking for one that is not fails the sign-in (20027).
   */
  userScopes?: string[];
  /**
   * Reads of the module's own tables beyond StreamReads (e.g. comparing two of its streams),
   * handed to phases as `ctx.moduleReads`, bound to the run's tenant. Reads only: the engine
   * commits what phases return.
   */
  reads?(db: Kysely<Database>, tenantKey: string): R;
  /** Throws a SyncError when this tenant cannot run the module at all. */
  precheck?(ctx: SyncContext<C, R>): void;
  phases: Array<SyncPhase<PhaseState, C, R>>;
  /**
   * Lark change events this module applies, by event type: the registry (connectors/index.ts)
   * builds the type -> handler map, so adding a module never edits events/dispatch.ts. Called only
   * for tenants with the module enabled; the handler decides whether the object is within its config.
   */
  events?: Readonly<Record<string, ModuleEventHandler<C, R>>>;
  /** Handlers run later through ctx.defer (e.g. a debounced re-read), by name. */
  deferred?: Readonly<Record<string, ModuleEventHandler<C, R>>>;
  /**
   * Folds two consecutive events of one type and tenant into one the handler can apply at once
   * (e.g. Base record changes of one table: one batch_get for up to 100 records), or undefined when
   * they don't fold. Used only for a type no other module handles.
   */
  mergeEvents?: Readonly<Record<string, EventMerger>>;
}

/** See SyncModuleDef.mergeEvents: `later` came after `earlier`; the result stands for both. */
export type EventMerger = (earlier: Record<string, unknown>, later: Record<string, unknown>) => Record<string, unknown> | undefined;

export type PhaseState = Record<string, unknown>;

/**
 * What a change event's re-read produced, applied like a sync page (one transaction): rows upserted
 * by key with their content hash, children replaced, rows confirmed gone marked deleted, the
 * objects' event marks advanced, and `records.changed` for the webhooks. Everything yields to newer
 * reads (`readSeq`, drawn before the re-read's call).
 */
export interface EventChange {
  readSeq: string;
  rows?: Partial<Record<StreamName, StreamRow[]>>;
  replaceChildren?: ChildScope[];
  /** keys whose absence the re-read confirmed (Lark said gone) */
  deleted?: Array<{ stream: StreamName; keys: string[] }>;
  /** the event's Lark time (operate_time, revision, push time) for these objects (see `freshRead`) */
  marks?: { keys: string[]; mark: number };
}

/** What a module's event handler gets: the tenant's validated config, Lark (paced like a sync), and how to apply. */
export interface ModuleEventContext<C = unknown, R = unknown> {
  tenantKey: string;
  appKind: 'store' | 'custom';
  config: C;
  /** Paced by the module's own buckets (the same budget its syncs draw from). */
  lark: SyncLarkClient;
  log: Logger;
  eventId: string;
  /** Lark's push time of the event (v2 header.create_time, v1 ts) */
  pushedAt: Date;
  moduleReads: R;
  /** Read access to the tenant's stream tables (what a sync stored). */
  db: Kysely<Database>;
  /** The number of a read about to start: take it BEFORE the call (read-seq.ts). */
  startRead(): Promise<string>;
  /**
   * The objects whose applied event mark is older than `mark` (or that have none): the others are
   * stale. With it, as startRead gives it, the number of the read that follows (one round trip
   * for both): call it right before the re-read, with nothing but database reads between.
   */
  freshRead(keys: string[], mark: number): Promise<{ fresh: string[]; readSeq: string }>;
  apply(change: EventChange): Promise<number>;
  /** A run of this module (the existing trigger; a run already queued or running is kept). */
  triggerSync(mode: SyncMode): Promise<void>;
  /**
   * Runs the module's deferred handler `name` with `payload` after `delayMs`; calls with the same
   * `key` before it runs collapse into one (debounce: the first call's time is kept).
   */
  defer(name: string, payload: Record<string, unknown>, opts: { key: string; delayMs: number }): Promise<void>;
  /** Tells what follows the module's data (knowledge-base sinks) that rows changed, as after a run. */
  changed(): Promise<void>;
}

/**
 * A module's handler of one event type: 'processed' when it changed something. Declared in method
 * form so a module's handlers (typed by its config) fit the registry's erased type, as its phases do.
 */
export type ModuleEventHandler<C = unknown, R = unknown> = {
  handle(event: Record<string, unknown>, ctx: ModuleEventContext<C, R>): Promise<'processed' | 'ignored'>;
}['handle'];

/** Lets each phase keep its own state type while a module lists them side by side. */
export function definePhase<S extends object, C, R = unknown>(phase: SyncPhase<S, C, R>): SyncPhase<PhaseState, C, R> {
  return phase as unknown as SyncPhase<PhaseState, C, R>;
}

/** A module whose phases only emit, sweep and confirm the streams it declares (checked at start). */
export function defineModule<C, R = unknown>(def: SyncModuleDef<C, R>): SyncModuleDef<C, R> {
  return def;
}
