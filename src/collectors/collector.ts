/**
 * The collector contract and the registry that runs collectors, times each
 * one and reports `kvm_scrape_collector_duration_seconds` and
 * `kvm_scrape_collector_success`, as node_exporter does.
 *
 * @module
 */

import type { Discovery } from "../discovery/vm_discovery.ts";
import { ConditionLog } from "../log/condition_log.ts";
import type { Logger } from "../log/logger.ts";
import { FamilySet, type MetricFamily } from "../metrics/model.ts";
import type { ReadGuard } from "../system/read_guard.ts";
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
  /** Aborts at the scrape's deadline: a collector stops waiting then. */
  signal: AbortSignal;
  /** Reads that may block go through this (see {@linkcode ReadGuard.read}). */
  reads: ReadGuard;
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
  /** Whether it succeeded: false when it failed or did not finish by the deadline. */
  success: boolean;
  /** Whether it was still running at the scrape's deadline. */
  timedOut: boolean;
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

/** Options of {@linkcode runCollectors}. */
export interface RunCollectorsOptions {
  /** What every collector gets; its `signal` is the deadline. */
  context: ScrapeContext;
  /** Logger. */
  logger: Logger;
  /** Logs a collector's failure when it starts and when it stops; one of its own by default. */
  conditions?: ConditionLog;
  /** Clock, for tests. */
  now?: () => number;
}

/** Settles when `signal` aborts; never rejects. */
function whenAborted(signal: AbortSignal): Promise<"deadline"> {
  if (signal.aborted) return Promise.resolve("deadline");
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve("deadline"), { once: true })
  );
}

async function runOne(
  collector: Collector,
  options: RunCollectorsOptions & { conditions: ConditionLog; deadline: Promise<"deadline"> },
): Promise<{ out: FamilySet; outcome: CollectorOutcome }> {
  const now = options.now ?? (() => performance.now());
  const out = new FamilySet();
  const start = now();
  const collecting = collector.collect(options.context, out).then(() => "done" as const);
  let result: "done" | "deadline" | Error;
  try {
    result = await Promise.race([collecting, options.deadline]);
  } catch (error) {
    result = error as Error;
  }
  // A late collector may still fail after the scrape answered; nobody is waiting for it.
  if (result === "deadline") collecting.catch(() => {});
  const fields = { collector: collector.name };
  if (result === "done") {
    options.conditions.off(collector.name, "Collector recovered", fields);
  } else if (result === "deadline") {
    options.conditions.on(collector.name, {
      level: "warn",
      msg: "Collector did not finish by the scrape deadline; serving what it collected",
      fields,
    });
  } else {
    options.conditions.on(collector.name, {
      level: "error",
      msg: "Collector failed",
      fields: { ...fields, err: result.message },
    });
  }
  const outcome = {
    name: collector.name,
    durationSeconds: (now() - start) / 1000,
    success: result === "done",
    timedOut: result === "deadline",
  };
  return { out, outcome };
}

/**
 * Runs collectors in parallel and merges their families. When two collectors
 * produce the same series, the earlier collector in `collectors` wins, so that
 * no series is ever exported twice (debugfs before QMP). At the deadline
 * (`context.signal`) a collector still running is reported with success 0 and
 * what it had collected is kept: each sample is a whole reading of one stat.
 *
 * @param collectors The enabled collectors, in priority order.
 * @param options The scrape context, a logger, a condition log, and a clock for tests.
 * @returns The merged families and each collector's outcome.
 */
export async function runCollectors(
  collectors: readonly Collector[],
  options: RunCollectorsOptions,
): Promise<CollectorsResult> {
  const conditions = options.conditions ?? new ConditionLog(options.logger);
  const deadline = whenAborted(options.context.signal);
  const runs = await Promise.all(
    collectors.map((collector) => runOne(collector, { ...options, conditions, deadline })),
  );

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
