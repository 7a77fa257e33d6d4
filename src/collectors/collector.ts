/**
 * The collector contract and the registry that runs collectors, times each
 * one and reports `kvm_scrape_collector_duration_seconds` and
 * `kvm_scrape_collector_success`, as node_exporter does.
 *
 * @module
 */

import type { Discovery } from "../discovery/vm_discovery.ts";
import type { Logger } from "../log/logger.ts";
import { FamilySet, type MetricFamily } from "../metrics/model.ts";
import { StatSet } from "../stats/stat.ts";
import type { ReadErrorRecorder } from "./read_errors.ts";

/** What every collector gets for one scrape. */
export interface ScrapeContext {
  /** The VMs found for this scrape. */
  discovery: Discovery;
  /** Where unreadable stats are counted. */
  readErrors: ReadErrorRecorder;
  /** vCPU count by VM dir, as collectors saw it. */
  vcpuCounts: Map<string, number>;
  /** How each VM's QMP query went, by VM dir ("ok" or the error reason). */
  qmpOutcomes: Map<string, string>;
}

/** What a collector emits: KVM stats, and the exporter's own metrics about its work. */
export interface CollectorOutput {
  /** KVM stats, typed; naming schemes turn them into families. */
  stats: StatSet;
  /** The exporter's own metrics (e.g. `kvm_exporter_qmp_errors`), already named. */
  families: FamilySet;
}

/** A source of KVM stats. */
export interface Collector {
  /** Name, as in `--collector.<name>` and the `collector` label. */
  readonly name: string;
  /**
   * Adds stats to `out`. Throws only when the collector as a whole failed
   * (its success goes to 0); a single unreadable stat is recorded instead.
   */
  collect(context: ScrapeContext, out: CollectorOutput): Promise<void>;
}

/** How one collector did in a scrape. */
export interface CollectorOutcome {
  /** The collector. */
  name: string;
  /** Wall time in seconds. */
  durationSeconds: number;
  /** Whether it succeeded. */
  success: boolean;
}

/** Result of {@linkcode runCollectors}. */
export interface CollectorsResult {
  /** The stats of all collectors, one per identity. */
  stats: StatSet;
  /** The collectors' own metrics, with the two self-metric families. */
  families: MetricFamily[];
  /** One outcome per collector, in registry order. */
  outcomes: CollectorOutcome[];
}

/**
 * Runs collectors in parallel and merges their stats. When two collectors
 * produce the same stat (level, VM, vCPU, name), the earlier collector in
 * `collectors` wins (debugfs before QMP).
 *
 * @param collectors The enabled collectors, in priority order.
 * @param options The scrape context, a logger, and a clock for tests.
 * @returns The merged stats and own metrics, and each collector's outcome.
 */
export async function runCollectors(
  collectors: readonly Collector[],
  options: { context: ScrapeContext; logger: Logger; now?: () => number },
): Promise<CollectorsResult> {
  const now = options.now ?? (() => performance.now());
  const runs = await Promise.all(collectors.map(async (collector) => {
    const out: CollectorOutput = { stats: new StatSet(), families: new FamilySet() };
    const start = now();
    let success = true;
    try {
      await collector.collect(options.context, out);
    } catch (error) {
      success = false;
      options.logger.error("Collector failed", {
        collector: collector.name,
        err: (error as Error).message,
      });
    }
    const outcome = { name: collector.name, durationSeconds: (now() - start) / 1000, success };
    return { out, outcome };
  }));

  const stats = new StatSet();
  const merged = new FamilySet();
  for (const { out } of runs) {
    stats.addAll(out.stats);
    for (const family of out.families.families()) {
      for (const sample of family.samples) merged.add(family, sample.labels, sample.value);
    }
  }
  const outcomes = runs.map((r) => r.outcome);
  const self = new FamilySet();
  for (const o of outcomes) {
    self.add(
      {
        name: "kvm_scrape_collector_duration_seconds",
        help: "node_exporter: Duration of a collector scrape.",
        type: "gauge",
      },
      [["collector", o.name]],
      o.durationSeconds,
    );
    self.add(
      {
        name: "kvm_scrape_collector_success",
        help: "node_exporter: Whether a collector succeeded.",
        type: "gauge",
      },
      [["collector", o.name]],
      o.success ? 1 : 0,
    );
  }
  return { stats, families: [...merged.families(), ...self.families()], outcomes };
}
