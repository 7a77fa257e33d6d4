/**
 * Counts the stats a scrape could not read, by reason and by VM, and logs
 * each unreadable path once at warn (later ones at debug): under lockdown a
 * host with 100 VMs would otherwise log thousands of lines a minute.
 *
 * @module
 */

import type { Logger } from "../log/logger.ts";
import type { ReadErrorReason } from "../system/file_system.ts";

/** The reasons, in the order the metric lists them. */
export const READ_ERROR_REASONS: readonly ReadErrorReason[] = [
  "permission",
  "vanished",
  "malformed",
  "other",
];

/** The read errors of one scrape. */
export interface ReadErrorCounts {
  /** Errors by collector, then by reason. */
  byCollector: Map<string, Map<ReadErrorReason, number>>;
  /** Errors by VM domain. */
  byDomain: Map<string, number>;
}

/** Remembers which paths were already logged at warn, across scrapes. */
export class ReadErrorLog {
  #warned = new Set<string>();
  #logger: Logger;

  /**
   * Creates an empty log.
   *
   * @param logger Where the lines go.
   */
  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Starts counting for one scrape.
   *
   * @returns A recorder and the counts it fills.
   */
  begin(): ReadErrorRecorder {
    return new ReadErrorRecorder(this.#logger, this.#warned);
  }

  /**
   * Forgets paths under dirs that are gone, so the set does not grow as VMs come and go.
   *
   * @param keep Whether a path should still be remembered.
   */
  prune(keep: (path: string) => boolean): void {
    for (const path of this.#warned) if (!keep(path)) this.#warned.delete(path);
  }
}

/** Records the read errors of one scrape. */
export class ReadErrorRecorder {
  /** The counts so far. */
  readonly counts: ReadErrorCounts = { byCollector: new Map(), byDomain: new Map() };
  #logger: Logger;
  #warned: Set<string>;

  /**
   * Starts a scrape's counts.
   *
   * @param logger Where the lines go.
   * @param warned Paths already logged at warn.
   */
  constructor(logger: Logger, warned: Set<string>) {
    this.#logger = logger;
    this.#warned = warned;
  }

  /**
   * Records one stat that could not be read.
   *
   * @param where The collector, the VM's domain (if any) and the path or source.
   * @param reason Why.
   * @param detail The error text.
   */
  record(
    where: { collector: string; domain: string | undefined; path: string },
    reason: ReadErrorReason,
    detail: string,
  ): void {
    let reasons = this.counts.byCollector.get(where.collector);
    if (reasons === undefined) {
      reasons = new Map();
      this.counts.byCollector.set(where.collector, reasons);
    }
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    if (where.domain !== undefined) {
      this.counts.byDomain.set(where.domain, (this.counts.byDomain.get(where.domain) ?? 0) + 1);
    }
    // A VM that exits mid-scrape is normal on a hypervisor: never worth a warning.
    const first = reason !== "vanished" && !this.#warned.has(where.path);
    if (first) this.#warned.add(where.path);
    const fields = { collector: where.collector, path: where.path, reason, err: detail };
    if (first) this.#logger.warn("Cannot read stat; skipping it (logged once per path)", fields);
    else this.#logger.debug("Cannot read stat; skipping it", fields);
  }
}
