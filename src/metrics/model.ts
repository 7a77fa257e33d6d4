/**
 * The metric model that naming schemes build and the exposition renders:
 * families of samples, independent of the text format.
 *
 * @module
 */

/** The metric types of the model. */
export type MetricType = "gauge" | "counter" | "histogram" | "untyped";

/** Label pairs in the order they are printed. */
export type Labels = ReadonlyArray<readonly [name: string, value: string]>;

/** An exact decimal: `units` × 10^`exponent` (nanoseconds as seconds stay exact). */
export interface Decimal {
  /** The integer part before scaling. */
  units: bigint;
  /** The power of ten, e.g. -9. */
  exponent: number;
}

/**
 * Nanoseconds as exact seconds.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { nanosecondsAsSeconds } from "./model.ts";
 * assert.deepEqual(nanosecondsAsSeconds(1_500_000_000n), { units: 1_500_000_000n, exponent: -9 });
 * ```
 *
 * @param ns A count of nanoseconds.
 * @returns The same time in seconds, as a decimal.
 */
export function nanosecondsAsSeconds(ns: bigint): Decimal {
  return { units: ns, exponent: -9 };
}

/**
 * A value. Integer stats stay `bigint` so that u64 and negative s64 values
 * are printed exactly; scaled stats are a {@linkcode Decimal}; computed values
 * (durations, timestamps) are `number`.
 */
export type SampleValue = bigint | number | Decimal;

/** A histogram sample's cumulative buckets, sum and count. */
export interface HistogramValue {
  /** Cumulative counts by upper bound (`le`, already formatted), ending with `+Inf`. */
  buckets: ReadonlyArray<readonly [le: string, count: bigint]>;
  /** Sum of the observations, if known. */
  sum: SampleValue | undefined;
  /** Number of observations. */
  count: bigint;
}

/** One sample. */
export interface Sample {
  /** Label pairs; names must be valid label names. */
  labels: Labels;
  /** The value; a histogram's value for histogram families. */
  value: SampleValue | HistogramValue;
}

/** A metric family: one name, one HELP, one TYPE, many samples. */
export interface MetricFamily {
  /** A valid metric name. */
  name: string;
  /** HELP text, unescaped. */
  help: string;
  /** TYPE. */
  type: MetricType;
  /** Samples; order does not matter, the exposition sorts them. */
  samples: Sample[];
}

/**
 * Collects samples into families by name, so that several sources can add to
 * one family. A second sample with the same labels is dropped: the first one
 * added wins, and no series is ever exported twice.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { FamilySet } from "./model.ts";
 * const set = new FamilySet();
 * set.add({ name: "up", help: "Up.", type: "gauge" }, [], 1);
 * set.add({ name: "up", help: "Up.", type: "gauge" }, [], 2);
 * assert(set.families().length === 1 && set.families()[0]!.samples.length === 1);
 * ```
 */
export class FamilySet {
  /**
   * Each family with the series it has, as a bitset indexed by label-set id: a bit test per
   * sample, where a set of key strings per family costs a hash, an insert and the set's growth.
   */
  #families = new Map<string, { family: MetricFamily; series: Uint8Array }>();
  /**
   * Each label set's id, found once per label set: naming schemes share one label set among a
   * VM's or vCPU's series, so a scrape builds a key per VM and vCPU, not per sample.
   */
  #ids = new Map<Labels, number>();
  /** The id of each distinct label set's content: equal label sets are one series. */
  #idsByKey = new Map<string, number>();

  /**
   * Adds one sample per reason, each labelled `reason` after `labels`: every reason has its
   * series, so one that comes and goes never makes a series vanish.
   *
   * @example Usage
   * ```ts
   * import assert from "node:assert/strict";
   * import { FamilySet } from "./model.ts";
   * const set = new FamilySet();
   * set.addByReason({ name: "e", help: "E.", type: "gauge" }, {
   *   reasons: ["a", "b"],
   *   count: (reason) => reason === "a" ? 2 : 0,
   * });
   * assert.deepEqual(set.families()[0]!.samples.map((s) => s.value), [2, 0]);
   * ```
   *
   * @param meta The family's name, HELP and TYPE.
   * @param by The reasons, each one's value, and the labels before `reason` (none by default).
   */
  addByReason<R extends string>(
    meta: Omit<MetricFamily, "samples">,
    by: { reasons: readonly R[]; count: (reason: R) => number; labels?: Labels },
  ): void {
    const before = by.labels ?? [];
    for (const reason of by.reasons) {
      this.add(meta, [...before, ["reason", reason]], by.count(reason));
    }
  }

  /**
   * Adds one sample to the family `meta.name`, creating the family on first use.
   *
   * @param meta The family's name, HELP and TYPE (used on first use only).
   * @param labels The sample's labels.
   * @param value The sample's value.
   * @returns Whether the sample was added (false for a duplicate series).
   */
  add(
    meta: Omit<MetricFamily, "samples">,
    labels: Labels,
    value: SampleValue | HistogramValue,
  ): boolean {
    let id = this.#ids.get(labels);
    if (id === undefined) {
      let key = "";
      for (const [name, v] of labels) key += `${name}\0${v}\0`;
      id = this.#idsByKey.get(key);
      if (id === undefined) {
        id = this.#idsByKey.size;
        this.#idsByKey.set(key, id);
      }
      this.#ids.set(labels, id);
    }
    let entry = this.#families.get(meta.name);
    if (entry === undefined) {
      entry = { family: { ...meta, samples: [] }, series: new Uint8Array(8) };
      this.#families.set(meta.name, entry);
    }
    const byte = id >> 3;
    const bit = 1 << (id & 7);
    let series = entry.series;
    if (byte >= series.length) {
      series = new Uint8Array(Math.max(byte + 1, series.length * 2));
      series.set(entry.series);
      entry.series = series;
    } else if ((series[byte]! & bit) !== 0) {
      return false;
    }
    series[byte] = series[byte]! | bit;
    entry.family.samples.push({ labels, value });
    return true;
  }

  /**
   * The families collected so far.
   *
   * @returns The families, in insertion order.
   */
  families(): MetricFamily[] {
    return [...this.#families.values()].map((entry) => entry.family);
  }
}
