/**
 * Work shared by the callers that ask for it while it runs: the first caller for a key starts
 * it, later callers for the same key get the same promise until it settles.
 *
 * @module
 */

/**
 * In-flight work by key.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { SingleFlight } from "./single_flight.ts";
 * const flights = new SingleFlight<string, number>();
 * let runs = 0;
 * const start = () => Promise.resolve(++runs);
 * const [a, b] = [flights.join("k", start), flights.join("k", start)];
 * assert.equal(a, b);
 * assert.equal(await a, 1);
 * assert.equal(await flights.join("k", start), 2); // Settled: the next caller starts anew.
 * ```
 */
export class SingleFlight<K, T> {
  readonly #flights = new Map<K, Promise<T>>();

  /** Keys whose work is running. */
  get size(): number {
    return this.#flights.size;
  }

  /**
   * The work in flight for `key`, or new work from `start`.
   *
   * @param key What makes two requests the same.
   * @param start Starts the work, or returns undefined to refuse (nothing is then in flight).
   * @returns The shared promise, or undefined when `start` refused.
   */
  join(key: K, start: () => Promise<T> | undefined): Promise<T> | undefined {
    return this.joinAny({ key, accepts: (running) => running === key, start });
  }

  /**
   * The first work in flight whose key the caller accepts, or new work under `key`.
   *
   * @param request The key new work runs under, which running keys will do, and how to start.
   * @returns The shared promise, or undefined when `start` refused.
   */
  joinAny(request: {
    key: K;
    accepts: (running: K) => boolean;
    start: () => Promise<T> | undefined;
  }): Promise<T> | undefined {
    const { key, accepts, start } = request;
    for (const [running, flight] of this.#flights) if (accepts(running)) return flight;
    const started = start();
    if (started === undefined) return undefined;
    const flight = started.finally(() => this.#flights.delete(key));
    // Every joiner awaits `flight`; this keeps a rejection nobody awaited yet from being unhandled.
    flight.catch(() => {});
    this.#flights.set(key, flight);
    return flight;
  }
}
