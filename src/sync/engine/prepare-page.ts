import type { PageResult, PhaseState } from '../sync-module.js';
import type { StreamDef, StreamRow } from '../streams.js';
import { prepareRows, type PreparedRows } from '../write-page.js';
import { checkpointText } from './checkpoints.js';

/** A page as read, with everything the commit needs computed up front (off the commit's path). */
export interface ReadyPage {
  /** the page without its rows, which live on only as `writes` */
  page: Omit<PageResult<PhaseState>, 'rows'>;
  writes: PreparedRows[];
  /** rows per stream, as the run's counts add them up */
  counts: Record<string, number>;
  /** values stored with U+FFFD in place of a NUL or a lone surrogate */
  sanitized: number;
  /** the phase state after this page, serialised when the page was read */
  checkpoint: string;
}

/** A page's rows hashed and serialised for the commit, and its checkpoint as it was read. */
export async function preparePage({ rows, ...page }: PageResult<PhaseState>, streams: Readonly<Record<string, StreamDef>>): Promise<ReadyPage> {
  // Serialised first, before anything else can run: the checkpoint is this page's state exactly.
  const checkpoint = checkpointText(page.state, page.done);
  const writes: PreparedRows[] = [];
  const counts: Record<string, number> = {};
  let sanitized = 0;
  for (const [stream, list] of Object.entries(rows) as Array<[string, StreamRow[] | undefined]>) {
    if (!list) continue;
    const def = streams[stream];
    // A phase writes only the tables its module declared (and its migration created).
    if (!def) throw new Error(`a phase emitted rows for ${stream}, which its module does not declare`);
    const prepared = await prepareRows({ ...def, name: stream, module: '' }, list);
    writes.push(prepared);
    sanitized += prepared.sanitized;
    counts[stream] = (counts[stream] ?? 0) + list.length;
  }
  return { page, writes, counts, sanitized, checkpoint };
}
