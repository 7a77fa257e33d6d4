/**
 * What the HTTP app needs of the scrape pipeline: a scrape, its last report,
 * the kernel lockdown mode, and vm.yaml's store. The exporter provides it.
 *
 * @module
 */

import type { ScrapeReport } from "../collectors/scrape_report.ts";
import type { ConfigStore } from "../config/config_store.ts";
import type { MetricFamily } from "../metrics/model.ts";
import type { LockdownMode, LockdownSource } from "../system/lockdown.ts";

/** What the HTTP app serves from. */
export interface MetricsSource {
  /**
   * Runs one scrape; never throws. Answers by the deadline with what was collected.
   *
   * @param options The deadline in ms from now, if shorter than `scrapeTimeoutMs`.
   */
  scrape(options?: { timeoutMs?: number }): Promise<MetricFamily[]>;
  /** `--web.scrape-timeout` in ms. */
  readonly scrapeTimeoutMs: number;
  /** The last scrape's report, if any. */
  readonly lastScrape: ScrapeReport | undefined;
  /** Kernel lockdown mode. */
  readonly lockdown: LockdownMode;
  /** Where the lockdown mode came from. */
  readonly lockdownSource: LockdownSource;
  /** The enabled collectors' names, in registry order. */
  readonly collectors: readonly string[];
  /** The vm.yaml in force: whether it loaded, where it came from, and a reload. */
  readonly configStore: Pick<
    ConfigStore,
    "lastReloadSuccessful" | "ready" | "reload" | "origin" | "path"
  >;
}
