/**
 * The in-memory metric model that collectors fill and the exposition renders:
 * families of samples, independent of any naming scheme or text format.
 *
 * @module
 */

import type { StatSchema } from "../qmp/query_stats.ts";

/**
 * The metric types of the model. "histogram" families hold KVM's histograms
 * with their schema; the compat naming has no names for them, so the text
 * exposition leaves them out.
 */
export type MetricType = "gauge" | "counter" | "histogram";

/** Label pairs in the order they are printed. */
export type Labels = ReadonlyArray<readonly [name: string, value: string]>;

/**
 * One sample. Integer stats stay `bigint` so that u64 and negative s64 values
 * are printed exactly; computed values (durations, timestamps) are `number`.
 */
export interface Sample {
  /** Label pairs; names must be valid label names. */
  labels: Labels;
  /** The value; for a histogram, the sum of its buckets. */
  value: bigint | number;
  /** KVM's own description of the stat (type, unit, scale), where the source gives one. */
  stat?: StatSchema;
  /** A histogram's buckets, as KVM counts them. */
  buckets?: readonly bigint[];
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
 * Collects samples into families by name, so that several sources (the root
 * dir, each VM dir, each vCPU dir) can add to one family.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { FamilySet } from "./model.ts";
 * const set = new FamilySet();
 * set.add({ name: "up", help: "Up.", type: "gauge" }, [], 1);
 * assert(set.families().length === 1);
 * ```
 */
export class FamilySet {
  #families = new Map<string, MetricFamily>();

  /**
   * Adds one sample to the family `meta.name`, creating the family on first use.
   *
   * @param meta The family's name, HELP and TYPE (used on first use only).
   * @param labels The sample's labels.
   * @param value The sample's value.
   * @param extra KVM's stat schema and histogram buckets, where known.
   */
  add(
    meta: Omit<MetricFamily, "samples">,
    labels: Labels,
    value: bigint | number,
    extra: Pick<Sample, "stat" | "buckets"> = {},
  ): void {
    let family = this.#families.get(meta.name);
    if (family === undefined) {
      family = { ...meta, samples: [] };
      this.#families.set(meta.name, family);
    }
    family.samples.push({ labels, value, ...extra });
  }

  /**
   * The families collected so far.
   *
   * @returns The families, in insertion order.
   */
  families(): MetricFamily[] {
    return [...this.#families.values()];
  }
}
