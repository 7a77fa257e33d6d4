/**
 * What one scrape saw, kept for the status page: each collector's outcome,
 * the VMs found, what the collectors learned of them, and what could not be
 * read of each.
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { StatSet, StatSource } from "../stats/stat.ts";
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
  /** The VMs' exported stats, by VM dir, counted by the source that supplied each. */
  statSources: StatSourceCounts;
}

/** Stats by VM dir, counted by source. */
export type StatSourceCounts = ReadonlyMap<string, ReadonlyMap<StatSource, number>>;

/**
 * Counts each VM's stats by the source that supplied them: after precedence, one per stat, so
 * a stat debugfs refused and QMP supplied counts for QMP.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { StatSet, untypedStat } from "../stats/stat.ts";
 * import { statSourcesByVm } from "./scrape_report.ts";
 * const stats = new StatSet();
 * const vm = { dir: "1-2", domain: "a" };
 * const base = { level: "vm", vm, vcpu: undefined, type: untypedStat(), value: 1n } as const;
 * stats.add({ ...base, name: "pages_4k", source: "debugfs" });
 * stats.add({ ...base, name: "exits", source: "qmp" });
 * stats.add({ ...base, name: "halt_exits", source: "qmp" });
 * assert.deepEqual(statSourcesByVm(stats).get("1-2"), new Map([["debugfs", 1], ["qmp", 2]]));
 * ```
 *
 * @param stats The scrape's merged stats.
 * @returns The counts, by VM dir; host stats are left out.
 */
export function statSourcesByVm(stats: StatSet): StatSourceCounts {
  const byDir = new Map<string, Map<StatSource, number>>();
  // Every scrape, over every stat (16k on a large host): collectors add a VM's stats together,
  // so the last VM's counts are usually the ones wanted, without a lookup.
  let dir: string | undefined;
  let counts = new Map<StatSource, number>();
  for (const stat of stats) {
    if (stat.vm === undefined) continue;
    if (stat.vm.dir !== dir) {
      dir = stat.vm.dir;
      counts = byDir.get(dir) ?? new Map();
      byDir.set(dir, counts);
    }
    counts.set(stat.source, (counts.get(stat.source) ?? 0) + 1);
  }
  return byDir;
}
