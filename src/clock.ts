import { sql, type RawBuilder } from 'kysely';

/**
 * The time the token and scheduling code judge "due" by. Production uses the system clock, with
 * SQL comparing against the database's own now(), so every replica judges by one clock. A
 * simulated clock lets tests and benchmarks run hours of scheduling in seconds.
 */
export interface Clock {
  /** The current time, for computations in this process. */
  now(): Date;
  /** The current time as an SQL expression. */
  sql(): RawBuilder<Date>;
}

export const systemClock: Clock = {
  now: () => new Date(),
  sql: () => sql<Date>`now()`,
};

/** A clock that only moves when told to. */
export class SimulatedClock implements Clock {
  private ms: number;

  constructor(start: Date | number) {
    this.ms = typeof start === 'number' ? start : start.getTime();
  }

  now(): Date {
    return new Date(this.ms);
  }

  sql(): RawBuilder<Date> {
    return sql<Date>`${new Date(this.ms).toISOString()}::timestamptz`;
  }

  set(at: Date | number): void {
    this.ms = typeof at === 'number' ? at : at.getTime();
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}
