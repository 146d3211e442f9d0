/**
 * Runs the functions given to it one after another, in the order given: each starts once the one
 * before has settled (a failure does not stop the next). In one process only; across replicas the
 * database orders work.
 */
export class OneAtATime {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const mine = this.tail.then(fn, fn);
    this.tail = mine.catch(() => undefined);
    return mine;
  }
}
