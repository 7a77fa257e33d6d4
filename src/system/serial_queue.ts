/**
 * Runs async tasks one at a time, in call order: a connection that carries one call at a time
 * (a QMP session, a libvirt connection) takes its calls through one queue.
 *
 * @module
 */

/**
 * A queue of async tasks: each starts when the one before it has settled, whether it resolved
 * or rejected; a task's failure is its caller's alone.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { SerialQueue } from "./serial_queue.ts";
 *
 * const queue = new SerialQueue();
 * const order: string[] = [];
 * const slow = queue.run(async () => {
 *   await new Promise((resolve) => setTimeout(resolve, 10));
 *   order.push("slow");
 * });
 * const fast = queue.run(() => Promise.resolve(order.push("fast")));
 * await Promise.all([slow, fast]);
 * deepStrictEqual(order, ["slow", "fast"]);
 * ```
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * Runs `task` after every task queued before it has settled.
   *
   * @param task The work.
   * @returns What `task` returns.
   */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => {});
    return result;
  }
}
