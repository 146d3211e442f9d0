/**
 * A small seeded PRNG (mulberry32) for chaos tests: the same seed gives the same plan, so a
 * failing trial is replayed by setting the printed seed.
 */
export class SeededRandom {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(0, items.length - 1)] as T;
  }

  /** `n` distinct items (all of them when there are fewer). */
  sample<T>(items: readonly T[], n: number): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i -= 1) {
      const j = this.int(0, i);
      [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
    }
    return copy.slice(0, Math.min(n, copy.length));
  }

  /** A child generator, so adding draws to one part of a plan does not shift the others. */
  fork(label: number): SeededRandom {
    return new SeededRandom(Math.imul(this.seed ^ 0x9e3779b9, 31) + label * 1_000_003);
  }
}

/** The seed from `name` in the environment, or a fresh one (printed by the caller). */
export function seedFromEnv(name: string): number {
  const raw = process.env[name];
  if (raw !== undefined && raw.trim() !== '') {
    const n = Number(raw);
    if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got ${raw}`);
    return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 31);
}
