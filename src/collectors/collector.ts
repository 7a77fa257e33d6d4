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

/** A source of metrics. */
export interface Collector {
  /** Name, as in `--collector.<name>` and the `collector` label. */
  readonly name: string;
  /**
   * Adds samples to `out`. Throws only when the collector as a whole failed
   * (its success goes to 0); a single unreadable stat is recorded instead.
   */
  collect(context: ScrapeContext, out: FamilySet): Promise<void>;
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
  /** All families, with the two self-metric families. */
  families: MetricFamily[];
  /** One outcome per collector, in registry order. */
  outcomes: CollectorOutcome[];
}

function sampleKey(name: string, labels: MetricFamily["samples"][number]["labels"]): string {
  return JSON.stringify([name, labels]);
}

/**
 * Runs collectors in parallel and merges their families. When two collectors
 * produce the same series, the earlier collector in `collectors` wins, so that
 * no series is ever exported twice (debugfs before QMP).
 *
 * @param collectors The enabled collectors, in priority order.
 * @param options The scrape context, a logger, and a clock for tests.
 * @returns The merged families and each collector's outcome.
 */
export async function runCollectors(
  collectors: readonly Collector[],
  options: { context: ScrapeContext; logger: Logger; now?: () => number },
): Promise<CollectorsResult> {
  const now = options.now ?? (() => performance.now());
  const runs = await Promise.all(collectors.map(async (collector) => {
    const out = new FamilySet();
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

  const merged = new Map<string, MetricFamily>();
  const seen = new Set<string>();
  for (const { out } of runs) {
    for (const family of out.families()) {
      let target = merged.get(family.name);
      if (target === undefined) {
        target = { ...family, samples: [] };
        merged.set(family.name, target);
      }
      for (const sample of family.samples) {
        const key = sampleKey(family.name, sample.labels);
        if (seen.has(key)) continue;
        seen.add(key);
        target.samples.push(sample);
      }
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
  return { families: [...merged.values(), ...self.families()], outcomes };
}
