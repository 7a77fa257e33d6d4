/**
 * A call's time budget: one timer (and optionally an abort signal) that every step of the call
 * races against, so connecting, a handshake and the call itself share one bound.
 *
 * @module
 */

/** Options of {@linkcode Deadline}. */
export interface DeadlineOptions {
  /** The budget, in milliseconds. */
  timeoutMs: number;
  /** Makes the error a race rejects with when the time is up (called then, so it can say where). */
  timeoutError: () => Error;
  /** Ends the budget early. */
  signal?: AbortSignal;
  /** Makes the error for an abort of `signal`, from its reason. Defaults to `timeoutError`. */
  abortError?: (reason: unknown) => Error;
}

/** Options of {@linkcode Deadline.race}. */
export interface RaceOptions<T> {
  /** Runs when the deadline wins the race (e.g. closes the connection the work waits on). */
  onExpire?: () => void;
  /** Gets what the work yields after the deadline won (e.g. a connection to close). */
  onLateResult?: (value: T) => void;
}

/**
 * A time budget, started when made. {@linkcode Deadline.race} waits for some work or rejects with
 * the deadline's error when the time is up; {@linkcode Deadline.clear} stops the timer (call it
 * in a `finally`: no timer is left running).
 *
 * @example Bound a wait
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { Deadline } from "./deadline.ts";
 *
 * const deadline = new Deadline({ timeoutMs: 10, timeoutError: () => new Error("too slow") });
 * try {
 *   await rejects(deadline.race(new Promise(() => {})), /too slow/);
 * } finally {
 *   deadline.clear();
 * }
 * ```
 */
export class Deadline {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expired: Promise<never>;
  #error: Error | undefined;
  #onAbort: (() => void) | undefined;
  #signal: AbortSignal | undefined;

  /**
   * Starts the budget.
   *
   * @param options The budget, its errors and an abort signal.
   */
  constructor(options: DeadlineOptions) {
    const { timeoutMs, timeoutError, signal, abortError = timeoutError } = options;
    this.#signal = signal;
    this.#expired = new Promise<never>((_, reject) => {
      const expire = (error: Error): void => {
        this.#error ??= error;
        reject(this.#error);
      };
      this.#timer = setTimeout(() => expire(timeoutError()), timeoutMs);
      if (signal !== undefined) {
        this.#onAbort = () => expire(abortError(signal.reason));
        if (signal.aborted) this.#onAbort();
        else signal.addEventListener("abort", this.#onAbort, { once: true });
      }
    });
    this.#expired.catch(() => {});
  }

  /** Whether the time is up (or the signal aborted). */
  get expired(): boolean {
    return this.#error !== undefined;
  }

  /**
   * Waits for `work`, or rejects with the deadline's error when the time is up, after running
   * `options.onExpire`.
   *
   * @param work What to wait for.
   * @param options What to do when the deadline wins.
   * @returns What `work` yields.
   */
  async race<T>(work: Promise<T>, options: RaceOptions<T> = {}): Promise<T> {
    try {
      return await Promise.race([work, this.#expired]);
    } catch (error) {
      if (error === this.#error) {
        options.onExpire?.();
        work.then((value) => options.onLateResult?.(value), () => {});
      }
      throw error;
    }
  }

  /** Stops the timer and stops listening to the signal. */
  clear(): void {
    clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}
