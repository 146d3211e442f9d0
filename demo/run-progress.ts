import { MODULES } from '../src/connectors/index.js';
import type { StreamName } from '../src/sync/streams.js';
import type { SyncRunView } from '../src/sync/sync.service.js';
import type { SyncModuleName } from '../src/sync/sync.tables.js';
import { UNAVAILABLE_TO_STORE_APPS, type SeededTenant } from './tenants.js';

export type StreamStatus = SyncRunView['status'] | 'unavailable';

/** One progress bar: a stream of one tenant's run. */
export interface StreamProgress {
  tenantKey: string;
  tenantName: string;
  module: SyncModuleName;
  stream: StreamName;
  rows: number;
  expected: number | undefined;
  /** 0..1, for the bar */
  fraction: number;
  /** rows per second: recent while running, the run's average once finished */
  rate: number | undefined;
  status: StreamStatus;
  note: string;
}

/** Streams that depend on another's progress (one instance brings several fields, tasks, timeline entries). */
const FOLLOWS: Partial<Record<StreamName, StreamName>> = {
  approval_instance_fields: 'approval_instances',
  approval_tasks: 'approval_instances',
  approval_timeline: 'approval_instances',
};

const RATE_WINDOW_MS = 4_000;

export const streamsOf = (module: SyncModuleName): StreamName[] =>
  Object.keys(MODULES[module]?.streams ?? {});

export const isFinished = (run: SyncRunView) => run.status === 'succeeded' || run.status === 'failed' || run.status === 'cancelled';

export const runSeconds = (run: SyncRunView): number | undefined =>
  run.startedAt && run.finishedAt ? (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000 : undefined;

export function isUnavailableToStoreApp(run: SyncRunView): boolean {
  return run.status === 'failed' && run.error?.class === 'unsupported_for_store_app';
}

/** Turns polled runs into bars: fractions against what the simulator holds, and recent rates. */
export class RunProgress {
  private readonly samples = new Map<string, Array<{ at: number; rows: number }>>();

  constructor(private readonly tenants: SeededTenant[]) {}

  view(runs: ReadonlyMap<string, SyncRunView>, now = Date.now()): StreamProgress[] {
    const out: StreamProgress[] = [];
    for (const t of this.tenants) {
      for (const module of t.modules) {
        const run = runs.get(`${t.key}/${module}`);
        const fractions = new Map<StreamName, number>();
        for (const stream of streamsOf(module)) {
          const rows = run?.counts[stream] ?? 0;
          const expected = t.expected[stream];
          const rate = run ? this.rate(run, stream, rows, now) : undefined;
          let fraction = expected ? Math.min(1, rows / expected) : 0;
          const leader = FOLLOWS[stream];
          if (leader) fraction = fractions.get(leader) ?? 0;
          if (run?.status === 'succeeded') fraction = 1;
          fractions.set(stream, fraction);
          const status: StreamStatus = !run ? 'queued' : isUnavailableToStoreApp(run) ? 'unavailable' : run.status;
          out.push({
            tenantKey: t.key,
            tenantName: t.name,
            module,
            stream,
            rows,
            // A finished run shows what it read, not the simulator's count.
            expected: run && isFinished(run) ? undefined : expected,
            fraction,
            rate,
            status,
            note: noteFor(run),
          });
        }
      }
    }
    return out;
  }

  private rate(run: SyncRunView, stream: StreamName, rows: number, now: number): number | undefined {
    if (isFinished(run)) {
      const seconds = runSeconds(run);
      return seconds && rows > 0 ? rows / seconds : undefined;
    }
    if (run.status !== 'running') return undefined;
    const key = `${run.id}/${stream}`;
    const list = this.samples.get(key) ?? [];
    list.push({ at: now, rows });
    while (list.length > 2 && now - (list[1]?.at ?? now) >= RATE_WINDOW_MS) list.shift();
    this.samples.set(key, list);
    const first = list[0];
    if (!first || now - first.at < 900) return undefined;
    return ((rows - first.rows) * 1000) / (now - first.at);
  }
}

function noteFor(run: SyncRunView | undefined): string {
  if (!run || run.status === 'queued') return 'queued';
  if (run.status === 'running') return '';
  if (isUnavailableToStoreApp(run)) return UNAVAILABLE_TO_STORE_APPS;
  const seconds = runSeconds(run);
  if (run.status === 'succeeded') return seconds === undefined ? 'done' : `done in ${seconds.toFixed(1)} s`;
  if (run.status === 'cancelled') return 'cancelled';
  return `failed: ${run.error?.class ?? 'unknown'}`;
}
