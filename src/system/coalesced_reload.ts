/**
 * Coalesces reload requests: at most one load runs and one waits, and every caller gets the
 * outcome of the load that covered its request.
 *
 * @module
 */

/**
 * Runs a load on request, coalescing requests. A request made while no load runs starts one. A
 * request made while a load runs is covered by the next load (what is loaded may have changed
 * since the running one read it); every request made before that next load starts shares it. So
 * 100 requests in a row cost at most 2 loads.
 *
 * @example
 * ```ts
 * import { CoalescedReload } from "./coalesced_reload.ts";
 *
 * let loads = 0;
 * const reload = new CoalescedReload(async (_reason: string) => ++loads);
 * const outcomes = await Promise.all([reload.request("a"), reload.request("b")]);
 * console.assert(loads === 2 && outcomes[1] === 2);
 * ```
 */
export class CoalescedReload<T> {
  #load: (reason: string) => Promise<T>;
  #running: Promise<T> | undefined;
  #pending: Promise<T> | undefined;

  /**
   * Creates a reloader that has not loaded yet.
   *
   * @param load Does one load; `reason` is what asked for it (the first of the requests it
   *   covers), for the log.
   */
  constructor(load: (reason: string) => Promise<T>) {
    this.#load = load;
  }

  /**
   * Asks for a load.
   *
   * @param reason What asks, for the log.
   * @returns The outcome of the load that covers this request (the same for every request it
   *   covers).
   */
  request(reason: string): Promise<T> {
    if (this.#pending !== undefined) return this.#pending;
    if (this.#running === undefined) return this.#start(reason);
    const next = (): Promise<T> => {
      this.#pending = undefined;
      return this.#start(reason);
    };
    const pending = this.#running.then(next, next);
    this.#pending = pending;
    return pending;
  }

  #start(reason: string): Promise<T> {
    const running = this.#load(reason).finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    this.#running = running;
    return running;
  }
}
