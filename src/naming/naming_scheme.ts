/**
 * The naming schemes, chosen by `--metrics.naming`: pure functions from the
 * scrape's stats and the exporter's own metrics to the families to expose.
 *
 * @module
 */

import type { MetricFamily } from "../metrics/model.ts";
import type { KvmStat } from "../stats/stat.ts";
import { compatFamilies } from "./compat.ts";
import { prometheusFamilies } from "./prometheus.ts";

/** The naming schemes. */
export const NAMING_SCHEMES = ["compat", "prometheus"] as const;

/** A naming scheme's name. */
export type NamingScheme = typeof NAMING_SCHEMES[number];

/** Options of {@linkcode nameStats}. */
export interface NamingOptions {
  /** The scheme. */
  naming: NamingScheme;
  /** The debugfs KVM dir (compat HELP names it). */
  kvmdebugDir: string;
  /** Buckets per histogram at most (prometheus scheme); 0 for all. */
  histogramMaxBuckets: number;
}

/**
 * Names the scrape's stats in the chosen scheme and adds the exporter's own
 * metrics, whose names do not depend on the scheme.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { nameStats } from "./naming_scheme.ts";
 * const families = nameStats([], [{ name: "up", help: "Up.", type: "gauge", samples: [] }], { naming: "prometheus", kvmdebugDir: "/d", histogramMaxBuckets: 0 });
 * assert(families.length === 1);
 * ```
 *
 * @param stats The scrape's stats, debugfs ones first.
 * @param own The exporter's own families.
 * @param options The scheme and its options.
 * @returns Every family to expose.
 */
export function nameStats(
  stats: Iterable<KvmStat>,
  own: readonly MetricFamily[],
  options: NamingOptions,
): MetricFamily[] {
  const named = options.naming === "compat"
    ? compatFamilies(stats, { kvmdebugDir: options.kvmdebugDir })
    : prometheusFamilies(stats, {
      histogramMaxBuckets: options.histogramMaxBuckets,
      reserved: new Set(own.map((family) => family.name)),
    });
  return [...named, ...own];
}
