/**
 * A worker's concurrency limit, shared by its connections to every address:
 * a body starts when a slot is free, else waits its turn (first come, first
 * served).
 *
 *     const slots = new Slots(2);
 *     const withdraw = slots.take(() => run().finally(() => slots.release()));
 *     withdraw(); // gives up the turn if it has not started yet
 */
export class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    this.free = size;
  }

  /** Bodies waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Calls `start` at once when a slot is free, else when one is released;
   * `start` then holds a slot until `release()`. Returns a function that
   * withdraws a `start` that has not been called yet (a no-op afterwards).
   */
  take(start: () => void): () => void {
    if (this.free > 0) {
      this.free -= 1;
      start();
      return () => undefined;
    }
    const turn = () => start();
    this.waiting.push(turn);
    return () => {
      const index = this.waiting.indexOf(turn);
      if (index >= 0) this.waiting.splice(index, 1);
    };
  }

  /** Frees a slot: hands it to the oldest waiting `start`, if any. */
  release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.free += 1;
    else next();
  }
}
