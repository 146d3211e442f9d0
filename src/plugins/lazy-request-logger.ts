import type { FastifyBaseLogger } from 'fastify';
import { levels, type Bindings, type ChildLoggerOptions } from 'pino';

type Method = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * A request's logger that becomes a real pino child only when something logs at an enabled level.
 * Pino makes a child per request (bindings serialised through the redaction paths, and log
 * methods rebuilt for a route level), which was 2.5% of the event endpoint's CPU (`npm run bench
 * -- events`) for a logger that, at the route's `warn` level, writes only for rejected pushes.
 */
class LazyRequestLogger {
  private made: FastifyBaseLogger | undefined;
  readonly level: string;
  private readonly threshold: number;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {
    this.level = options.level ?? parent.level;
    // 'silent' (and any name pino does not know) is above every level.
    this.threshold = levels.values[this.level] ?? Infinity;
  }

  /** The real child logger, made the first time it is needed. */
  private get real(): FastifyBaseLogger {
    return (this.made ??= this.parent.child(this.bindings, this.options));
  }

  private write(method: Method, args: unknown[]): void {
    if (levels.values[method]! < this.threshold) return;
    const real = this.real;
    (real[method] as (...a: unknown[]) => void).apply(real, args);
  }

  // On the prototype, not per instance: one of these loggers is made for every request.
  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real.child(bindings, options);
  }
}

/** Fastify's child logger factory, for routes that log rarely (setChildLoggerFactory is scoped). */
export const lazyChildLoggerFactory = (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger =>
  new LazyRequestLogger(logger, bindings, options) as unknown as FastifyBaseLogger;
