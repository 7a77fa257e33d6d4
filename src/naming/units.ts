/**
 * Turning KVM's raw integers into base units: nanoseconds into seconds
 * (exactly, as a decimal), KiB into bytes, and KVM's histogram buckets into
 * Prometheus's cumulative buckets.
 *
 * @module
 */

import type { HistogramValue, SampleValue } from "../metrics/model.ts";
import type { StatHistogram, StatType } from "../stats/stat.ts";

/**
 * Scales a raw value by the stat's base and exponent, exactly where the
 * scale is a power of ten or a non-negative power of two.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { toBaseUnits } from "./units.ts";
 * const type = { kind: "cumulative", unit: "seconds", base: 10, exponent: -9, bucketSize: 0, origin: "catalog" } as const;
 * assert.deepEqual(toBaseUnits(1500n, type), { units: 1500n, exponent: -9 });
 * ```
 *
 * @param raw The value as KVM counts it.
 * @param type The stat's type.
 * @returns The value in base units.
 */
export function toBaseUnits(raw: bigint, type: StatType): SampleValue {
  const { base, exponent } = type;
  if (exponent === 0) return raw;
  if (base === 2) {
    return exponent > 0 ? raw << BigInt(exponent) : Number(raw) / 2 ** -exponent;
  }
  return exponent > 0 ? raw * 10n ** BigInt(exponent) : { units: raw, exponent };
}

/**
 * The largest raw value each bucket holds; `undefined` for the last bucket,
 * which also takes everything larger. KVM's log2 histogram puts v in bucket
 * fls64(v): bucket 0 holds 0, bucket i holds [2^(i−1), 2^i − 1]. A linear
 * histogram puts v in bucket v / size: bucket i holds [i·size, (i+1)·size − 1].
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { bucketUpperBounds } from "./units.ts";
 * assert.deepEqual(bucketUpperBounds("log2_hist", 0, 4), [0n, 1n, 3n, undefined]);
 * assert.deepEqual(bucketUpperBounds("linear_hist", 10, 3), [9n, 19n, undefined]);
 * ```
 *
 * @param kind The histogram kind.
 * @param bucketSize A linear histogram's bucket width (raw units).
 * @param count The number of buckets.
 * @returns One upper bound per bucket.
 */
export function bucketUpperBounds(
  kind: "log2_hist" | "linear_hist",
  bucketSize: number,
  count: number,
): (bigint | undefined)[] {
  const bounds: (bigint | undefined)[] = [];
  for (let i = 0; i < count; i++) {
    if (i === count - 1) bounds.push(undefined);
    else if (kind === "log2_hist") bounds.push(i === 0 ? 0n : (1n << BigInt(i)) - 1n);
    else bounds.push(BigInt(i + 1) * BigInt(bucketSize) - 1n);
  }
  return bounds;
}

/**
 * Converts a KVM histogram into cumulative Prometheus buckets, `le` in base
 * units, the last bucket `+Inf`; `_count` is the sum of the buckets. With
 * `maxBuckets` > 0, the buckets past the first `maxBuckets − 1` merge into
 * `+Inf`. Returns undefined for a linear histogram without a bucket size.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { toPrometheusHistogram } from "./units.ts";
 * const type = { kind: "log2_hist", unit: "seconds", base: 10, exponent: -9, bucketSize: 0, origin: "schema" } as const;
 * const h = toPrometheusHistogram({ buckets: [1n, 2n, 3n], sum: 10n }, { type, maxBuckets: 0, formatLe: String });
 * assert.deepEqual(h?.buckets.map(([, c]) => c), [1n, 3n, 6n]);
 * assert(h?.count === 6n);
 * ```
 *
 * @param histogram KVM's buckets and the matching sum.
 * @param options The stat's type, the bucket cap, and how to print an `le`.
 * @returns The Prometheus histogram, or undefined.
 */
export function toPrometheusHistogram(
  histogram: StatHistogram,
  options: { type: StatType; maxBuckets: number; formatLe: (value: SampleValue) => string },
): HistogramValue | undefined {
  const { type, maxBuckets, formatLe } = options;
  if (type.kind !== "log2_hist" && type.kind !== "linear_hist") return undefined;
  if (type.kind === "linear_hist" && type.bucketSize <= 0) return undefined;
  const counts = histogram.buckets;
  if (counts.length === 0) return undefined;
  const bounds = bucketUpperBounds(type.kind, type.bucketSize, counts.length);
  const keep = maxBuckets > 0 ? Math.min(counts.length - 1, maxBuckets - 1) : counts.length - 1;
  const buckets: [string, bigint][] = [];
  let total = 0n;
  counts.forEach((count, i) => {
    total += count;
    if (i < keep) buckets.push([formatLe(toBaseUnits(bounds[i]!, type)), total]);
  });
  buckets.push(["+Inf", total]);
  const sum = histogram.sum === undefined ? undefined : toBaseUnits(histogram.sum, type);
  return { buckets, sum, count: total };
}
