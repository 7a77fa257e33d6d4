import assert from "node:assert/strict";
import { formatValue } from "../../src/exposition/text_format.ts";
import { bucketUpperBounds, toBaseUnits, toPrometheusHistogram } from "../../src/naming/units.ts";
import type { StatType } from "../../src/stats/stat.ts";

const NS: StatType = {
  kind: "cumulative",
  unit: "seconds",
  base: 10,
  exponent: -9,
  bucketSize: 0,
  origin: "schema",
};

Deno.test("toBaseUnits() scales exactly", async (t) => {
  const cases: { raw: bigint; type: Partial<StatType>; want: string }[] = [
    { raw: 1234567891n, type: {}, want: "1.234567891" },
    { raw: 5n, type: {}, want: "0.000000005" },
    { raw: 0n, type: {}, want: "0" },
    { raw: 2000000000n, type: {}, want: "2" },
    // Past 2^53 ns (104 days) a float64 would round: the decimal stays exact.
    { raw: 18446744073709551615n, type: {}, want: "18446744073.709551615" },
    { raw: 3n, type: { unit: "bytes", base: 2, exponent: 10 }, want: "3072" },
    { raw: 3n, type: { unit: "bytes", base: 10, exponent: 3 }, want: "3000" },
    { raw: 3n, type: { unit: undefined, exponent: 0 }, want: "3" },
    { raw: 1n, type: { base: 2, exponent: -1 }, want: "0.5" },
  ];
  for (const c of cases) {
    await t.step(`${c.raw} ${JSON.stringify(c.type)}`, () => {
      assert.equal(formatValue(toBaseUnits(c.raw, { ...NS, ...c.type })), c.want);
    });
  }
});

Deno.test("bucketUpperBounds() follows KVM's log2 and linear buckets", async (t) => {
  const cases: {
    kind: "log2_hist" | "linear_hist";
    size: number;
    count: number;
    want: (bigint | undefined)[];
  }[] = [
    { kind: "log2_hist", size: 0, count: 1, want: [undefined] },
    { kind: "log2_hist", size: 0, count: 5, want: [0n, 1n, 3n, 7n, undefined] },
    { kind: "linear_hist", size: 4, count: 3, want: [3n, 7n, undefined] },
    { kind: "linear_hist", size: 1, count: 2, want: [0n, undefined] },
  ];
  for (const c of cases) {
    await t.step(`${c.kind} size ${c.size} count ${c.count}`, () => {
      assert.deepEqual(bucketUpperBounds(c.kind, c.size, c.count), c.want);
    });
  }
  // The 32 buckets of halt_wait_hist: the last finite bound is 2^30 - 1 ns, then +Inf.
  const bounds = bucketUpperBounds("log2_hist", 0, 32);
  assert.deepEqual(bounds.slice(30), [1073741823n, undefined]);
});

Deno.test("toPrometheusHistogram() makes cumulative buckets, caps them, and sums", async (t) => {
  const log2: StatType = { ...NS, kind: "log2_hist" };
  const cases: {
    name: string;
    buckets: bigint[];
    sum: bigint | undefined;
    type: StatType;
    maxBuckets: number;
    want: [string, bigint][] | undefined;
    wantSum?: string;
  }[] = [
    {
      name: "log2, all buckets",
      buckets: [1n, 2n, 3n, 4n],
      sum: 30n,
      type: log2,
      maxBuckets: 0,
      want: [["0", 1n], ["0.000000001", 3n], ["0.000000003", 6n], ["+Inf", 10n]],
      wantSum: "0.00000003",
    },
    {
      name: "log2, capped at 2",
      buckets: [1n, 2n, 3n, 4n],
      sum: undefined,
      type: log2,
      maxBuckets: 2,
      want: [["0", 1n], ["+Inf", 10n]],
    },
    {
      name: "log2, cap above the bucket count",
      buckets: [1n, 2n],
      sum: undefined,
      type: log2,
      maxBuckets: 10,
      want: [["0", 1n], ["+Inf", 3n]],
    },
    {
      name: "log2, cap of 1: only +Inf",
      buckets: [1n, 2n],
      sum: undefined,
      type: log2,
      maxBuckets: 1,
      want: [["+Inf", 3n]],
    },
    {
      name: "linear, unitless",
      buckets: [5n, 0n, 1n],
      sum: undefined,
      type: { ...log2, kind: "linear_hist", unit: undefined, exponent: 0, bucketSize: 10 },
      maxBuckets: 0,
      want: [["9", 5n], ["19", 5n], ["+Inf", 6n]],
    },
    {
      name: "linear without a bucket size",
      buckets: [5n],
      sum: undefined,
      type: { ...log2, kind: "linear_hist" },
      maxBuckets: 0,
      want: undefined,
    },
    { name: "no buckets", buckets: [], sum: 0n, type: log2, maxBuckets: 0, want: undefined },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const h = toPrometheusHistogram({ buckets: c.buckets, sum: c.sum }, {
        type: c.type,
        maxBuckets: c.maxBuckets,
        formatLe: formatValue,
      });
      assert.deepEqual(h?.buckets, c.want);
      if (h === undefined) return;
      assert.equal(h.count, c.buckets.reduce((a, b) => a + b, 0n), "_count is the sum of buckets");
      assert.equal(h.sum === undefined ? undefined : formatValue(h.sum), c.wantSum);
    });
  }
});
