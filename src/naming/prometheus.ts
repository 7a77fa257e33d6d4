/**
 * The `prometheus` naming scheme: families by level (`kvm_host_*`,
 * `kvm_vm_*{domain}`, `kvm_vcpu_*{domain,vcpu}`), counters ending in
 * `_total`, values in base units (seconds, bytes), booleans and peaks as
 * gauges, KVM's histograms as Prometheus histograms, the vCPU `pid` file as
 * `kvm_vcpu_info{domain,vcpu,thread_id} 1`.
 *
 * @module
 */

import { formatValue } from "../exposition/text_format.ts";
import { FamilySet, type MetricFamily, type MetricType } from "../metrics/model.ts";
import { sanitizeMetricName } from "../metrics/metric_name.ts";
import { catalogEntry } from "../stats/catalog.ts";
import type { KvmStat, StatKind, StatLevel, StatType, TypeOrigin } from "../stats/stat.ts";
import { LabelSets } from "./label_sets.ts";
import { toBaseUnits, toPrometheusHistogram } from "./units.ts";

/** Options of {@linkcode prometheusFamilies}. */
export interface PrometheusOptions {
  /** Buckets exported per histogram at most (the rest merge into `+Inf`); 0 for all. */
  histogramMaxBuckets: number;
  /** Family names already taken by the exporter's own metrics. */
  reserved: ReadonlySet<string>;
}

const ORIGIN_RANK: Record<TypeOrigin, number> = {
  schema: 4,
  catalog: 3,
  suffix: 2,
  mode: 1,
  none: 0,
};

const METRIC_TYPES: Record<StatKind, MetricType> = {
  cumulative: "counter",
  instant: "gauge",
  peak: "gauge",
  boolean: "gauge",
  linear_hist: "histogram",
  log2_hist: "histogram",
  untyped: "untyped",
};

function isHistogram(kind: StatKind): boolean {
  return kind === "linear_hist" || kind === "log2_hist";
}

/**
 * The family name of a stat in the prometheus scheme.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { prometheusName } from "./prometheus.ts";
 * const ns = { unit: "seconds", base: 10, exponent: -9, bucketSize: 0, origin: "catalog" } as const;
 * assert(prometheusName("vm", "halt_wait_ns", { ...ns, kind: "cumulative" }) === "kvm_vm_halt_wait_seconds_total");
 * assert(prometheusName("vcpu", "halt_wait_hist", { ...ns, kind: "log2_hist" }) === "kvm_vcpu_halt_wait_seconds");
 * ```
 *
 * @param level The stat's level.
 * @param name The stat's KVM name.
 * @param type Its type.
 * @returns The family name.
 */
export function prometheusName(level: StatLevel, name: string, type: StatType): string {
  let base = catalogEntry(name)?.prometheusStem ?? sanitizeMetricName(name);
  if (isHistogram(type.kind)) base = base.replace(/_hist$/, "");
  if (type.unit === "seconds") {
    base = base.replace(/_(ns|us|ms)$/, "");
    if (!base.endsWith("_seconds")) base += "_seconds";
  } else if (type.unit === "bytes" && !base.endsWith("_bytes")) {
    base += "_bytes";
  }
  if (type.kind === "cumulative" && !base.endsWith("_total")) base += "_total";
  return `kvm_${level}_${base}`;
}

/**
 * The HELP of a stat: the catalog's sentence, and how it was summed.
 *
 * @param level The stat's level.
 * @param name The stat's KVM name.
 * @returns The HELP text.
 */
export function prometheusHelp(level: StatLevel, name: string): string {
  const entry = catalogEntry(name);
  const help = entry?.help ?? `KVM statistic "${name}", which this exporter's catalog lacks.`;
  if (level === "host") return `${help} Summed over the host's VMs.`;
  if (level === "vm" && entry?.target === "vcpu") return `${help} Summed over the VM's vCPUs.`;
  return help;
}

/** One type per stat name: a schema's beats the catalog's beats a file mode's. */
function bestTypes(stats: readonly KvmStat[]): Map<string, StatType> {
  const best = new Map<string, StatType>();
  for (const stat of stats) {
    const current = best.get(stat.name);
    if (current === undefined || ORIGIN_RANK[stat.type.origin] > ORIGIN_RANK[current.origin]) {
      best.set(stat.name, stat.type);
    }
  }
  return best;
}

/**
 * Names stats the Prometheus way. Histograms come from QMP only: a debugfs
 * `*_hist` file holds a single number, and is left out.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { prometheusFamilies } from "./prometheus.ts";
 * import { catalogType } from "../stats/catalog.ts";
 * const families = prometheusFamilies([{ level: "vm", vm: { dir: "1-2", domain: "a" }, vcpu: undefined, name: "exits", type: catalogType("exits")!, value: 7n, source: "debugfs" }], { histogramMaxBuckets: 0, reserved: new Set() });
 * assert(families[0]!.name === "kvm_vm_exits_total" && families[0]!.type === "counter");
 * ```
 *
 * @param stats The scrape's stats.
 * @param options The histogram bucket cap, and the names of the exporter's own families.
 * @returns The families.
 */
export function prometheusFamilies(
  stats: Iterable<KvmStat>,
  options: PrometheusOptions,
): MetricFamily[] {
  const all = [...stats];
  const types = bestTypes(all);
  const out = new FamilySet();
  // One type per name in a scrape, so one family per level and name: made once per scrape.
  const metas = new Map<StatLevel, Map<string, Omit<MetricFamily, "samples">>>();
  const labelSets = new LabelSets({ host: [], missingDomain: "" });
  for (const stat of all) {
    const type = types.get(stat.name) ?? stat.type;
    const labels = labelSets.of(stat);
    if (stat.level === "vcpu" && stat.name === "pid" && typeof stat.value === "bigint") {
      out.add(
        {
          name: "kvm_vcpu_info",
          help: "The host thread that runs each vCPU; join on domain and vcpu.",
          type: "gauge",
        },
        [...labels, ["thread_id", String(stat.value)]],
        1n,
      );
      continue;
    }
    // A debugfs *_hist file holds bucket 0 only: a number that reads like a count but is not one.
    if (stat.source === "debugfs" && stat.name.endsWith("_hist")) continue;
    let level = metas.get(stat.level);
    if (level === undefined) {
      level = new Map();
      metas.set(stat.level, level);
    }
    let meta = level.get(stat.name);
    if (meta === undefined) {
      meta = {
        name: prometheusName(stat.level, stat.name, type),
        help: prometheusHelp(stat.level, stat.name),
        type: METRIC_TYPES[type.kind],
      };
      level.set(stat.name, meta);
    }
    if (options.reserved.has(meta.name)) continue;
    if (typeof stat.value === "bigint") {
      if (!isHistogram(type.kind)) out.add(meta, labels, toBaseUnits(stat.value, type));
      continue;
    }
    const histogram = toPrometheusHistogram(stat.value, {
      type,
      maxBuckets: options.histogramMaxBuckets,
      formatLe: formatValue,
    });
    if (histogram !== undefined) out.add(meta, labels, histogram);
  }
  return out.families();
}
