import { deepStrictEqual } from "node:assert/strict";
import type { CpuInfo, StatsResult } from "../../src/qmp/query_stats.ts";
import { identifyVcpus } from "../../src/qmp/vcpu_identities.ts";

const A = "/machine/unattached/device[0]";
const B = "/machine/unattached/device[2]";

function cpu(cpuIndex: number, qomPath: string): CpuInfo {
  return { cpuIndex, qomPath, threadId: 100 + cpuIndex };
}

function result(qomPath: string | undefined, exits: bigint): StatsResult {
  const stats = new Map([["exits", { kind: "scalar" as const, value: exits }]]);
  return qomPath === undefined ? { stats } : { qomPath, stats };
}

const CASES: {
  what: string;
  cpus: CpuInfo[];
  results: StatsResult[];
  kept: [number, bigint | undefined][];
  duplicates: string[];
}[] = [
  {
    what: "matches each result to its vCPU by qom-path",
    cpus: [cpu(0, A), cpu(1, B)],
    results: [result(B, 2n), result(A, 1n)],
    kept: [[0, 1n], [1, 2n]],
    duplicates: [],
  },
  {
    what: "keeps the first of two vCPUs with one cpu-index",
    cpus: [cpu(0, A), cpu(0, B)],
    results: [result(A, 1n), result(B, 2n)],
    kept: [[0, 1n]],
    duplicates: ["query-cpus-fast lists cpu-index 0 twice"],
  },
  {
    what: "keeps the first of two vCPUs with one qom-path",
    cpus: [cpu(0, A), cpu(1, A)],
    results: [result(A, 1n)],
    kept: [[0, 1n]],
    duplicates: [`query-cpus-fast lists qom-path "${A}" twice`],
  },
  {
    what: "keeps the first of two results for one qom-path",
    cpus: [cpu(0, A), cpu(1, B)],
    results: [result(A, 1n), result(A, 7n), result(B, 2n)],
    kept: [[0, 1n], [1, 2n]],
    duplicates: [`query-stats has qom-path "${A}" twice`],
  },
  {
    what: "leaves out a result of no vCPU (unplugged) and one without a qom-path, as no duplicate",
    cpus: [cpu(0, A)],
    results: [result(B, 2n), result(undefined, 3n), result(A, 1n)],
    kept: [[0, 1n]],
    duplicates: [],
  },
  {
    what: "keeps a vCPU without stats (plugged between the queries)",
    cpus: [cpu(0, A), cpu(1, B)],
    results: [result(A, 1n)],
    kept: [[0, 1n], [1, undefined]],
    duplicates: [],
  },
];

Deno.test("identifyVcpus()", async (t) => {
  for (const c of CASES) {
    await t.step(c.what, () => {
      const { vcpus, duplicates } = identifyVcpus(c.cpus, c.results);
      deepStrictEqual(
        vcpus.map(({ cpu, stats }) => {
          const exits = stats?.get("exits");
          return [cpu.cpuIndex, exits?.kind === "scalar" ? exits.value : undefined];
        }),
        c.kept,
      );
      deepStrictEqual(duplicates, c.duplicates);
    });
  }
});
