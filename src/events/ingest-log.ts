import type { Logger } from 'pino';

/** A summary line covers the group commits of this long at most. */
const SUMMARY_MS = 1_000;

/**
 * The info log of stored pushes: one line for the group commits of each second, not one per
 * commit. At thousands of pushes a second a line per commit (hundreds a second) was 3% of the
 * endpoint's CPU, and a flood in the log; a line per push was a tenth. A push in a quiet spell is
 * logged at once. The per-push line (with its request id) is at debug level, and lark_events keeps
 * every push with its received_at anyway.
 */
export class IngestLog {
  private pushes = 0;
  private stored = 0;
  private commits = 0;
  private maxCommitMs = 0;
  private readonly types = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private quietSince = 0;

  constructor(private readonly log: Logger) {}

  /** One group commit: its pushes by type (bounded, as the metric labels), how many were new. */
  add(pushesByType: Map<string, number>, stored: number, commitMs: number): void {
    if (!this.log.isLevelEnabled('info')) return;
    for (const [type, n] of pushesByType) {
      this.pushes += n;
      this.types.set(type, (this.types.get(type) ?? 0) + n);
    }
    this.stored += stored;
    this.commits += 1;
    this.maxCommitMs = Math.max(this.maxCommitMs, commitMs);
    if (this.timer) return;
    const now = performance.now();
    if (now - this.quietSince >= SUMMARY_MS) {
      this.flush();
      return;
    }
    this.timer = setTimeout(() => this.flush(), SUMMARY_MS - (now - this.quietSince));
    this.timer.unref();
  }

  /** Writes what has been summed so far (also at shutdown, so no count is lost). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.quietSince = performance.now();
    if (this.commits === 0) return;
    // "app_open=2 app_ticket=1": as object keys, names like app_ticket would meet the redaction paths.
    const types = [...this.types].map(([type, n]) => `${type}=${n}`).join(' ');
    this.log.info(
      { pushes: this.pushes, stored: this.stored, duplicates: this.pushes - this.stored, types, commits: this.commits, maxCommitMs: Math.round(this.maxCommitMs * 10) / 10 },
      'lark events stored',
    );
    this.pushes = 0;
    this.stored = 0;
    this.commits = 0;
    this.maxCommitMs = 0;
    this.types.clear();
  }
}
