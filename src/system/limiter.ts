/**
 * Bounds how many async operations run at once, so that a host with many VMs
 * never has thousands of debugfs files open in one scrape.
 *
 * @module
 */

import { sliceSpent, yieldToEventLoop } from "./event_loop_slice.ts";

/**
 * A counting semaphore around async functions. It also yields to the event
 * loop every few milliseconds, because the file reads it runs are synchronous.
 */
export class Limiter {
  #free: number;
  /** Waiters from `#head` on; a moving head keeps a long queue linear (`shift()` is not). */
  #waiting: ((() => void) | undefined)[] = [];
  #head = 0;

  /**
   * Creates a limiter.
   *
   * @param limit How many operations may run at once (at least 1).
   */
  constructor(limit: number) {
    this.#free = Math.max(1, limit);
  }

  /**
   * Runs `fn` once a slot is free.
   *
   * @param fn The operation.
   * @returns What `fn` returns.
   */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    if (sliceSpent()) await yieldToEventLoop();
    try {
      return await fn();
    } finally {
      const next = this.#waiting[this.#head];
      if (next === undefined) {
        this.#free++;
      } else {
        this.#waiting[this.#head++] = undefined;
        if (this.#head === this.#waiting.length) {
          this.#waiting = [];
          this.#head = 0;
        }
        next();
      }
    }
  }
}
