/**
 * What every benchmark prints and saves: a table of figure / larksync / baseline / ratio, the
 * command line that reproduces it, and an entry in bench/results.json (merged by benchmark name,
 * so running one benchmark keeps the others' latest figures).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results.json');

export interface Figure {
  figure: string;
  unit: string;
  larksync: number | null;
  baseline: number | null;
  /** larksync / baseline unless given; null when either side is missing */
  ratio?: number | null;
  /** the goal in words, e.g. ">= 1x baseline" */
  goal?: string;
  met?: boolean;
}

export interface BenchResult {
  name: string;
  title: string;
  /** reproduces this benchmark alone, knobs included */
  command: string;
  /** what the baseline is, in one sentence */
  baseline: string;
  figures: Figure[];
  notes?: string[];
  /** anything else worth keeping (raw latencies summary, parameters) */
  details?: Record<string, unknown>;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  postgres?: string;
}

export function describeMachine(postgres?: string): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    ...(postgres ? { postgres } : {}),
  };
}

const fmtNum = (n: number | null | undefined): string => {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
};

export function ratioOf(f: Figure): number | null {
  if (f.ratio !== undefined) return f.ratio;
  if (f.larksync === null || f.baseline === null || f.baseline === 0) return null;
  return f.larksync / f.baseline;
}

/** Prints the benchmark as a fixed-width table. */
export function printResult(r: BenchResult): void {
  const header = ['figure', 'larksync', 'baseline', 'ratio', 'goal'];
  const rows = r.figures.map((f) => {
    const ratio = ratioOf(f);
    const goal = f.goal ? `${f.goal}${f.met === undefined ? '' : f.met ? ' (met)' : ' (not met)'}` : '';
    return [`${f.figure} (${f.unit})`, fmtNum(f.larksync), fmtNum(f.baseline), ratio === null ? '-' : `${fmtNum(ratio)}x`, goal];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n## ${r.title}`);
  console.log(`baseline: ${r.baseline}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  for (const n of r.notes ?? []) console.log(`note: ${n}`);
  console.log(`reproduce: ${r.command}`);
}

interface ResultsFile {
  updatedAt: string;
  machine: Machine;
  benchmarks: Record<string, BenchResult & { measuredAt: string }>;
}

/** Merges this benchmark's result into bench/results.json. */
export function saveResult(r: BenchResult, machine: Machine): void {
  let file: ResultsFile = { updatedAt: '', machine, benchmarks: {} };
  if (existsSync(RESULTS_FILE)) {
    try {
      file = JSON.parse(readFileSync(RESULTS_FILE, 'utf8')) as ResultsFile;
    } catch {
      // A hand-edited or truncated file is replaced rather than failing the run.
    }
  }
  const now = new Date().toISOString();
  file.updatedAt = now;
  file.machine = machine;
  file.benchmarks = { ...file.benchmarks, [r.name]: { ...r, measuredAt: now } };
  writeFileSync(RESULTS_FILE, `${JSON.stringify(file, null, 2)}\n`);
}

/** The command that reproduces a benchmark, with the knobs that were set for this run. */
export function reproduce(name: string, knobs: string[]): string {
  const set = knobs.filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
  return [...set, `npm run bench -- ${name}`].join(' ');
}

/** Peak resident set size (VmHWM) of a process, in MiB, from /proc; null where there is no /proc. */
export function peakRssMiB(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

let clockTicks: number | undefined;

/** CPU seconds (user + system) a process has used so far, from /proc; null where there is none. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return null;
  }
}

/**
 * CPU seconds of every PostgreSQL process on this machine (backends, WAL writer, checkpointer).
 * A process that exits between two readings takes its share with it: read it around work done
 * on connections that stay open.
 */
export function postgresCpuSeconds(): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
    } catch {
      continue;
    }
    total += cpuSeconds(Number(entry)) ?? 0;
  }
  return total;
}

export const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};
