/**
 * Logs a condition that repeats every scrape (a debugfs dir that is missing,
 * a collector that fails) when it starts and when it stops, not every time.
 *
 * @module
 */

import type { LogFields, Logger } from "./logger.ts";

/** Remembers which conditions are on, across scrapes. */
export class ConditionLog {
  #logger: Logger;
  /** The last line logged for each condition that is on. */
  #active = new Map<string, string>();

  /**
   * Creates a log with every condition off.
   *
   * @param logger Where the lines go.
   */
  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Reports that a condition holds in this scrape: logged at `level` when it
   * starts or its message or fields change, at debug while it goes on.
   *
   * @example Usage
   * ```ts
   * import assert from "node:assert/strict";
   * import { createLogger } from "./logger.ts";
   * import { ConditionLog } from "./condition_log.ts";
   * const lines: string[] = [];
   * const log = new ConditionLog(createLogger({ write: (l) => lines.push(l) }));
   * log.on("kvm_stat", { level: "error", msg: "Cannot list /kvm" });
   * log.on("kvm_stat", { level: "error", msg: "Cannot list /kvm" });
   * log.off("kvm_stat", "Collector recovered");
   * assert(lines.length === 2);
   * ```
   *
   * @param key Which condition.
   * @param line The level, message and fields.
   */
  on(
    key: string,
    line: { level: "warn" | "error"; msg: string; fields?: LogFields },
  ): void {
    const text = JSON.stringify([line.level, line.msg, line.fields ?? {}]);
    if (this.#active.get(key) === text) {
      this.#logger.debug(line.msg, line.fields);
      return;
    }
    this.#active.set(key, text);
    this.#logger[line.level](line.msg, line.fields);
  }

  /**
   * Reports that a condition does not hold in this scrape: logged at info if it did before.
   *
   * @param key Which condition.
   * @param msg What recovered.
   * @param fields Extra fields.
   */
  off(key: string, msg: string, fields?: LogFields): void {
    if (!this.#active.delete(key)) return;
    this.#logger.info(msg, fields);
  }
}
