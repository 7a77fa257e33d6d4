/**
 * Which `query-stats` vCPU result is which vCPU, from `query-cpus-fast`: a
 * vCPU is known by its `cpu-index` (the `vcpu` label) and its `qom-path` (the
 * key of its stats). Pure: the caller runs the queries.
 *
 * @module
 */

import type { CpuInfo, StatsResult } from "./query_stats.ts";

/** A vCPU whose identity is certain, and its stats if `query-stats` had them. */
export interface IdentifiedVcpu {
  /** Its `query-cpus-fast` entry. */
  cpu: CpuInfo;
  /** Its stats, or undefined when `query-stats` had none for its `qom-path`. */
  stats: StatsResult["stats"] | undefined;
}

/** What {@linkcode identifyVcpus} made of one VM's replies. */
export interface VcpuIdentities {
  /** The vCPUs with an identity of their own, in `query-cpus-fast` order. */
  vcpus: IdentifiedVcpu[];
  /** One line per entry left out for repeating an identity, saying which and where. */
  duplicates: string[];
}

/**
 * Matches vCPU stats to vCPUs. A monitor that repeats an identity (two vCPUs
 * with one `cpu-index` or one `qom-path`, or two results for one `qom-path`)
 * cannot say whose stats are whose: the first in reply order keeps the
 * identity and the repeats are left out, each named in `duplicates`, so the
 * caller can count and log them instead of one silently overwriting another.
 * A result for a `qom-path` no vCPU has (a vCPU unplugged between the two
 * queries) is left out too, without being a duplicate.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { identifyVcpus } from "./vcpu_identities.ts";
 * const stats = new Map();
 * const { vcpus, duplicates } = identifyVcpus(
 *   [
 *     { cpuIndex: 0, qomPath: "/machine/a", threadId: 10 },
 *     { cpuIndex: 0, qomPath: "/machine/b", threadId: 11 },
 *   ],
 *   [{ qomPath: "/machine/a", stats }, { qomPath: "/machine/b", stats }],
 * );
 * assert.equal(vcpus.length, 1);
 * assert.equal(duplicates.length, 1);
 * ```
 *
 * @param cpus The `query-cpus-fast` entries, in reply order.
 * @param results The `query-stats` vCPU results, in reply order.
 * @returns The vCPUs kept, with their stats, and the duplicates left out.
 */
export function identifyVcpus(
  cpus: readonly CpuInfo[],
  results: readonly StatsResult[],
): VcpuIdentities {
  const duplicates: string[] = [];
  const byIndex = new Map<number, IdentifiedVcpu>();
  const byPath = new Map<string, IdentifiedVcpu>();
  for (const cpu of cpus) {
    const taken = byIndex.has(cpu.cpuIndex)
      ? `cpu-index ${cpu.cpuIndex}`
      : byPath.has(cpu.qomPath)
      ? `qom-path "${cpu.qomPath}"`
      : undefined;
    if (taken !== undefined) {
      duplicates.push(`query-cpus-fast lists ${taken} twice`);
      continue;
    }
    const vcpu: IdentifiedVcpu = { cpu, stats: undefined };
    byIndex.set(cpu.cpuIndex, vcpu);
    byPath.set(cpu.qomPath, vcpu);
  }
  for (const result of results) {
    const vcpu = byPath.get(result.qomPath ?? "");
    if (vcpu === undefined) continue;
    if (vcpu.stats !== undefined) {
      duplicates.push(`query-stats has qom-path "${vcpu.cpu.qomPath}" twice`);
      continue;
    }
    vcpu.stats = result.stats;
  }
  return { vcpus: [...byIndex.values()], duplicates };
}
