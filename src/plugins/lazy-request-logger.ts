import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, LogFn } from 'pino';

type Method = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
/** pino's levels by name. */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * A request's logger that becomes a real pino child only when something logs at an enabled level.
 * Pino makes a child per request (bindings serialised through the redaction paths, and log
 * methods rebuilt for a route level), which was 2.5% of the event endpoint's CPU (`npm run bench
 * -- events`) for a logger that, at the route's `warn` level, writes only for rejected pushes.
 */
class LazyRequestLogger {
  private real: FastifyBaseLogger | undefined;
  readonly level: string;
  private readonly threshold: number;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {
    this.level = options.level ?? parent.level;
    this.threshold = LEVELS[this.level] ?? LEVELS.info!;
  }

  private writer(method: Method): LogFn {
    return ((...args: Parameters<LogFn>) => {
      if (LEVELS[method]! < this.threshold) return;
      this.real ??= this.parent.child(this.bindings, this.options);
      this.real[method](...args);
    }) as LogFn;
  }

  readonly fatal = this.writer('fatal');
  readonly error = this.writer('error');
  readonly warn = this.writer('warn');
  readonly info = this.writer('info');
  readonly debug = this.writer('debug');
  readonly trace = this.writer('trace');
  readonly silent: LogFn = () => undefined;

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    this.real ??= this.parent.child(this.bindings, this.options);
    return this.real.child(bindings, options);
  }
}

/** Fastify's child logger factory, for routes that log rarely (setChildLoggerFactory is scoped). */
export const lazyChildLoggerFactory = (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger =>
  new LazyRequestLogger(logger, bindings, options) as unknown as FastifyBaseLogger;
