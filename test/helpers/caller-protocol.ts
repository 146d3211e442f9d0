import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';

/** What a caller process reports: fingerprints of what each call got, never the tokens. */
export interface CallerReport {
  pid: number;
  firedAt: number;
  /** When the last of this process's calls settled. */
  doneAt: number;
  /** How long this process had been ready when the barrier fell (negative: it was late). */
  readyMarginMs: number;
  durationsMs: number[];
  results: Array<{ ok: true; token: string } | { ok: false; error: string }>;
}

const fingerprint = (v: string) => `sha256:${createHash('sha256').update(v).digest('hex').slice(0, 12)}`;

/** START_AT (epoch ms) if set; otherwise prints {"ready":true} and reads the start time from stdin. */
export async function startTime(): Promise<number> {
  if (process.env.START_AT) return Number(process.env.START_AT);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    rl.close();
    return Number(line.trim());
  }
  throw new Error('stdin closed before a start time arrived');
}

/**
 * Waits for `at`, fires `calls` concurrent `getToken` calls and prints one JSON report line. Shared
 * by larksync's caller (test/helpers/token-caller.ts) and the SDK's (bench/sdk-token-caller.ts),
 * so both sides of the token benchmark are timed the same way.
 */
export async function fireAndReport(at: number, calls: number, getToken: () => Promise<string>): Promise<CallerReport> {
  const readyMarginMs = at - Date.now();
  if (readyMarginMs > 0) await new Promise((r) => setTimeout(r, readyMarginMs));
  const firedAt = Date.now();
  const settled = await Promise.allSettled(
    Array.from({ length: calls }, async () => {
      const started = performance.now();
      const token = await getToken();
      return { token, ms: performance.now() - started };
    }),
  );
  const report: CallerReport = {
    pid: process.pid,
    firedAt,
    doneAt: Date.now(),
    readyMarginMs,
    durationsMs: settled.map((s) => (s.status === 'fulfilled' ? Math.round(s.value.ms) : -1)),
    results: settled.map((s) =>
      s.status === 'fulfilled' ? { ok: true as const, token: fingerprint(s.value.token) } : { ok: false as const, error: String((s.reason as Error).message) },
    ),
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return report;
}
