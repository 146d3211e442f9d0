import cliProgress from 'cli-progress';
import type { StreamProgress } from './run-progress.js';

/** Where the scenario reports: narrative lines, and the state of every stream at each poll. */
export interface ProgressView {
  say(line: string): void;
  update(rows: readonly StreamProgress[]): void;
  stop(): void;
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const rowsText = (p: StreamProgress) => (p.expected !== undefined ? `${fmt(p.rows)}/${fmt(p.expected)}` : fmt(p.rows));
const rateText = (p: StreamProgress) => (p.rate === undefined ? '' : `${fmt(p.rate)} rows/s`);

export function silentView(): ProgressView {
  return { say: () => undefined, update: () => undefined, stop: () => undefined };
}

interface BarPayload {
  progress: StreamProgress;
  width: number;
}

/**
 * One bar per tenant × stream (cli-progress MultiBar). Lines are cut to the terminal's width,
 * since a wrapped line breaks the redraw.
 */
export function ttyView(out: NodeJS.WriteStream = process.stdout): ProgressView {
  let multibar: cliProgress.MultiBar | undefined;
  let stopped = false;
  const bars = new Map<string, cliProgress.SingleBar>();
  const tenantWidth = { n: 8 };

  const line = (p: StreamProgress, barSize: number): string => {
    const columns = out.columns || 120;
    const label = `${p.tenantName.padEnd(tenantWidth.n)}  ${p.stream.padEnd(24)}`;
    if (p.status === 'unavailable') return `${label}  -- ${p.note}`.slice(0, columns - 1);
    const filled = Math.round(p.fraction * barSize);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(barSize - filled)}`;
    const pct = `${Math.floor(p.fraction * 100)}%`.padStart(4);
    return `${label}  ${bar} ${pct} ${rowsText(p).padStart(15)} ${rateText(p).padStart(13)}  ${p.note}`.slice(0, columns - 1);
  };

  return {
    say(text) {
      if (multibar) multibar.log(`${text}\n`);
      else out.write(`${text}\n`);
    },
    update(rows) {
      if (stopped) return;
      if (!multibar) {
        tenantWidth.n = Math.max(8, ...rows.map((r) => r.tenantName.length));
        // Label, counts, rate and a short note take about 80 columns; the bar gets what is left.
        const barSize = Math.max(8, Math.min(30, (out.columns || 120) - tenantWidth.n - 80));
        multibar = new cliProgress.MultiBar(
          {
            stream: out,
            hideCursor: true,
            clearOnComplete: false,
            fps: 8,
            format: (_options, _params, payload: BarPayload) => line(payload.progress, payload.width),
          },
          cliProgress.Presets.shades_classic,
        );
        for (const p of rows) bars.set(`${p.tenantKey}/${p.stream}`, multibar.create(1000, 0, { progress: p, width: barSize }));
      }
      for (const p of rows) {
        const bar = bars.get(`${p.tenantKey}/${p.stream}`);
        bar?.update(Math.round(p.fraction * 1000), { progress: p });
      }
    },
    stop() {
      // Once: a second stop() would redraw the bars' lines as blank ones.
      multibar?.stop();
      multibar = undefined;
      stopped = true;
    },
  };
}

/**
 * For a pipe or a CI log: no redraws, a line per stream when it moved, at most every `everyMs`,
 * and one when it finishes.
 */
export function plainView(out: NodeJS.WritableStream = process.stdout, everyMs = 5_000): ProgressView {
  const started = Date.now();
  let lastPrint = 0;
  const printed = new Map<string, string>();
  const stamp = () => `[${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s]`;
  return {
    say(text) {
      out.write(`${text}\n`);
    },
    update(rows) {
      const now = Date.now();
      const due = now - lastPrint >= everyMs;
      for (const p of rows) {
        const key = `${p.tenantKey}/${p.stream}`;
        const finished = p.status !== 'queued' && p.status !== 'running';
        const text = finished
          ? `${p.tenantName}  ${p.stream}  ${p.status === 'unavailable' ? '--' : `${fmt(p.rows)} rows`}  ${p.note}`
          : `${p.tenantName}  ${p.stream}  ${rowsText(p)} rows  ${Math.floor(p.fraction * 100)}%  ${rateText(p)}  ${p.note}`;
        const previous = printed.get(key);
        if (previous === text || (!finished && !due) || (!finished && p.status === 'queued' && previous !== undefined)) continue;
        printed.set(key, text);
        out.write(`${stamp()} ${text.trimEnd()}\n`);
      }
      if (due) lastPrint = now;
    },
    stop() {},
  };
}
