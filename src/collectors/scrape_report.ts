/**
 * What one scrape saw, kept for the status page: each collector's outcome,
 * the VMs found, what the collectors learned of them, and what could not be
 * read of each.
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { CollectorOutcome } from "./collector.ts";
import type { MergedObservations } from "./vm_observations.ts";

/** What one scrape saw. */
export interface ScrapeReport {
  /** When it ended. */
  at: Date;
  /** Each collector's outcome, in registry order. */
  collectors: readonly CollectorOutcome[];
  /** The VMs found. */
  vms: readonly DiscoveredVm[];
  /** What the collectors learned of each VM, merged in registry order. */
  observations: MergedObservations;
  /** Stats not read in the scrape, by domain. */
  readErrorsByDomain: ReadonlyMap<string, number>;
}
