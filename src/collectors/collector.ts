/**
 * The collector contract, and the runner: it runs the enabled collectors of
 * the registry in parallel, merges their outputs in registry order, times each
 * one and reports `kvm_scrape_collector_duration_seconds` and
 * `kvm_scrape_collector_success`, as node_exporter does.
 *
 * @module
 */

import type { Discovery } from "../discovery/vm_discovery.ts";
import type { VmDirListings } from "../discovery/vm_dir_listings.ts";
import { ConditionLog } from "../log/condition_log.ts";
import type { Logger } from "../log/logger.ts";
import { FamilySet, type MetricFamily } from "../metrics/model.ts";
import type { ReadGuard } from "../system/read_guard.ts";
import { StatSet } from "../stats/stat.ts";
import {
  mergeReadErrorCounts,
  type ReadErrorCounts,
  type ReadErrorLog,
  type ReadErrorRecorder,
} from "./read_errors.ts";
import { type MergedObservations, mergeObservations, VmObservations } from "./vm_observations.ts";

/** What every collector gets for one scrape. */
export interface ScrapeContext {
  /** The VMs found for this scrape. */
  discovery: Discovery;
  /**
   * What the collectors this one declares it observes learned of each VM in the last scrape
   * (empty for the others).
   */
  observed: MergedObservations;
  /** Aborts at the scrape's deadline: a collector stops waiting then. */
  signal: AbortSignal;
  /** Reads that may block go through this (see {@linkcode ReadGuard.read}). */
  reads: ReadGuard;
  /** The VM dirs' entries, listed once per scrape for every collector. */
  vmDirs: VmDirListings;
}

/**
 * What a collector emits: KVM stats, the exporter's own metrics about its work, and what it
 * learned of each VM.
 */
export interface CollectorOutput {
  /** KVM stats, typed; naming schemes turn them into families. */
  stats: StatSet;
  /** The exporter's own metrics (e.g. `kvm_exporter_qmp_errors`), already named. */
  families: FamilySet;
  /** What it learned of each VM beside its stats. */
  observations: VmObservations;
  /** The stats it could not read. */
  readErrors: ReadErrorRecorder;
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
  /** Releases what it holds across scrapes (Workers), if anything. */
  close?(): void;
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
  /** The stats of all collectors, one per identity. */
  stats: StatSet;
  /** The collectors' own metrics, with the two self-metric families. */
  families: MetricFamily[];
  /** One outcome per collector, in registry order. */
  outcomes: CollectorOutcome[];
  /** What the collectors learned of each VM, merged in registry order. */
  observations: MergedObservations;
  /** What each collector learned, by collector name: the next scrape's `observed`. */
  byCollector: ReadonlyMap<string, VmObservations>;
  /** The stats the collectors could not read. */
  readErrors: ReadErrorCounts;
}

/** Options of {@linkcode runCollectors}. */
export interface RunCollectorsOptions {
  /** What every collector gets; its `signal` is the deadline. */
  context: Omit<ScrapeContext, "observed">;
  /** The collectors each collector observes, by collector name (see {@linkcode ScrapeContext}). */
  observes?: ReadonlyMap<string, readonly string[]>;
  /** What each collector learned in the last scrape ({@linkcode CollectorsResult.byCollector}). */
  last?: ReadonlyMap<string, VmObservations>;
  /** Logger. */
  logger: Logger;
  /** Logs the stats collectors cannot read, once per path across scrapes. */
  readErrorLog: ReadErrorLog;
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

/** What the collectors `name` observes learned in the last scrape. */
function observedBy(name: string, options: RunCollectorsOptions): MergedObservations {
  const observes = options.observes?.get(name) ?? [];
  return mergeObservations(observes.flatMap((other) => {
    const seen = options.last?.get(other);
    return seen === undefined ? [] : [[other, seen] as const];
  }));
}

async function runOne(
  collector: Collector,
  options: RunCollectorsOptions & { conditions: ConditionLog; deadline: Promise<"deadline"> },
): Promise<{ out: CollectorOutput; outcome: CollectorOutcome }> {
  const now = options.now ?? (() => performance.now());
  const out: CollectorOutput = {
    stats: new StatSet(),
    families: new FamilySet(),
    observations: new VmObservations(),
    readErrors: options.readErrorLog.begin(),
  };
  const start = now();
  const context = { ...options.context, observed: observedBy(collector.name, options) };
  const collecting = collector.collect(context, out).then(() => "done" as const);
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
    durationSeconds: Math.round((now() - start) * 1000) / 1e6, // Microseconds: no float noise.
    success: result === "done",
    timedOut: result === "deadline",
  };
  return { out, outcome };
}

/**
 * Runs collectors in parallel and merges their stats and observations. When two
 * collectors produce the same stat (level, VM, vCPU, name) or observe the same
 * thing of a VM, the earlier collector in `collectors` wins (debugfs before QMP). At the deadline
 * (`context.signal`) a collector still running is reported with success 0 and
 * what it had collected is kept: each stat is a whole reading.
 *
 * @param collectors The enabled collectors, in priority order.
 * @param options The scrape context, a logger, a condition log, and a clock for tests.
 * @returns The merged stats and own metrics, and each collector's outcome.
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

  const stats = new StatSet();
  const merged = new FamilySet();
  for (const { out } of runs) {
    stats.addAll(out.stats);
    for (const family of out.families.families()) {
      for (const sample of family.samples) merged.add(family, sample.labels, sample.value);
    }
  }
  const outcomes = runs.map((r) => r.outcome);
  const byCollector = collectors.map((c, i) => [c.name, runs[i]!.out.observations] as const);
  return {
    stats,
    families: [...merged.families(), ...selfFamilies(outcomes)],
    outcomes,
    observations: mergeObservations(byCollector),
    byCollector: new Map(byCollector),
    readErrors: mergeReadErrorCounts(runs.map((r) => r.out.readErrors.counts)),
  };
}

/** `kvm_scrape_collector_duration_seconds` and `kvm_scrape_collector_success`. */
function selfFamilies(outcomes: readonly CollectorOutcome[]): MetricFamily[] {
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
  return self.families();
}
