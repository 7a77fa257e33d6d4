/**
 * Replies of a fake QMP monitor that serves every VM and vCPU stat of the
 * catalog (src/stats/catalog.ts) with QEMU's schema, as QEMU under KVM on
 * x86 or arm64 would: each counter grows with the connection count, each
 * histogram has KVM's 32 log2 buckets and a matching `*_ns` sum.
 *
 * @module
 */

import { CATALOG, type CatalogEntry } from "../../src/stats/catalog.ts";

const SCHEMA_TYPES: Partial<Record<CatalogEntry["kind"], string>> = {
  cumulative: "cumulative",
  instant: "instant",
  peak: "peak",
  boolean: "instant",
  log2_hist: "log2-histogram",
};

const QMP_STATS = CATALOG.filter((e) => e.group !== "debugfs");

function schemaOf(entry: CatalogEntry): Record<string, unknown> {
  const schema: Record<string, unknown> = {
    name: entry.name,
    type: SCHEMA_TYPES[entry.kind],
    exponent: entry.exponent ?? 0,
  };
  if (entry.unit !== undefined) schema["unit"] = entry.unit;
  if (entry.exponent !== undefined) schema["base"] = 10;
  return schema;
}

/** 32 log2 buckets of a halt histogram: more in low buckets, growing with each connection. */
function histogram(connection: number, vcpu: number): { buckets: number[]; sum: bigint } {
  const buckets: number[] = [];
  let sum = 0n;
  for (let i = 0; i < 32; i++) {
    const count = i >= 8 && i <= 24 ? connection * (25 - i + vcpu) : 0;
    buckets.push(count);
    // Each value counted at its bucket's lower bound 2^(i-1): a sum the buckets agree with.
    sum += BigInt(count) * (i === 0 ? 0n : 1n << BigInt(i - 1));
  }
  return { buckets, sum };
}

function vcpuStats(connection: number, vcpu: number): { name: string; value: unknown }[] {
  const stats: { name: string; value: unknown }[] = [];
  QMP_STATS.filter((e) => e.target === "vcpu").forEach((entry, k) => {
    if (entry.kind === "log2_hist") {
      stats.push({ name: entry.name, value: histogram(connection, vcpu).buckets });
    } else if (entry.name.endsWith("_ns")) {
      const hist = QMP_STATS.find((e) => e.name === entry.name.replace(/_ns$/, "_hist"));
      const sum = hist === undefined ? BigInt(connection * 1000) : histogram(connection, vcpu).sum;
      stats.push({ name: entry.name, value: Number(sum) });
    } else if (entry.kind === "boolean") {
      stats.push({ name: entry.name, value: vcpu % 2 === 1 });
    } else {
      stats.push({ name: entry.name, value: connection * 1000 + vcpu * 10 + k });
    }
  });
  return stats;
}

/**
 * The `query-stats-schemas` and `query-stats` handlers of a catalog monitor.
 *
 * @param connection The connection's number, from 1.
 * @param qomPaths The QOM path of each vCPU.
 * @returns Handlers by command name.
 */
export function catalogReplies(
  connection: number,
  qomPaths: readonly string[],
): Record<string, (args: Record<string, unknown> | undefined) => unknown> {
  return {
    "query-stats-schemas": () =>
      (["vm", "vcpu"] as const).map((target) => ({
        provider: "kvm",
        target,
        stats: QMP_STATS.filter((e) => e.target === target).map(schemaOf),
      })),
    "query-stats": (args) =>
      args?.["target"] === "vm"
        ? [{
          provider: "kvm",
          stats: QMP_STATS.filter((e) => e.target === "vm")
            .map((e, k) => ({ name: e.name, value: connection * 100 + k })),
        }]
        : qomPaths.map((path, vcpu) => ({
          provider: "kvm",
          "qom-path": path,
          stats: vcpuStats(connection, vcpu),
        })),
  };
}
