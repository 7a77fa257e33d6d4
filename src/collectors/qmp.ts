/**
 * The `qmp` collector: KVM's binary stats as QEMU serves them over QMP
 * (`query-stats`, QEMU 7.1+). It has what debugfs hides under kernel
 * lockdown (every cumulative stat), per-vCPU counters and histograms, each
 * with KVM's schema (type, unit, scale).
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { Logger } from "../log/logger.ts";
import { type StatLevel, StatSet, type StatVm } from "../stats/stat.ts";
import { qmpStatType } from "../stats/stat_type.ts";
import {
  QmpError,
  type QmpErrorReason,
  type QmpSession,
  withQmpSession,
} from "../qmp/qmp_client.ts";
import {
  parseCpusFast,
  parseQueryStats,
  parseStatsSchemas,
  type StatsResult,
  type StatsSchemas,
  type StatValue,
} from "../qmp/query_stats.ts";
import type { StatSchema } from "../stats/stat.ts";
import type { FileSystem } from "../system/file_system.ts";
import { expandGlob } from "../system/glob.ts";
import type { Collector, CollectorOutput, ScrapeContext } from "./collector.ts";

/** The name of this collector. */
export const QMP = "qmp";

/** The reasons of `kvm_exporter_qmp_errors`. */
export const QMP_ERROR_REASONS: readonly QmpErrorReason[] = [
  "timeout",
  "refused",
  "protocol",
  "other",
];

/** Options of {@linkcode createQmpCollector}. */
export interface QmpCollectorOptions {
  /** Deadline of one VM's whole QMP session, in ms. */
  timeoutMs: number;
  /** Glob of extra sockets, matched to VMs through their vCPU threads. */
  socketGlob: string | undefined;
  /** procfs mount point (to find which process owns a vCPU thread). */
  procfs: string;
  /** File access. */
  fs: FileSystem;
  /** Logger. */
  logger: Logger;
}

/**
 * Parses the `Tgid:` line of `/proc/TID/status`: the process a thread belongs to.
 *
 * @param text The file content.
 * @returns The pid, or undefined.
 */
export function parseTgid(text: string): number | undefined {
  const match = /^Tgid:\s+(\d+)$/m.exec(text);
  return match === null ? undefined : Number(match[1]);
}

interface StatPlace {
  level: StatLevel;
  vm: StatVm;
  vcpu: string | undefined;
}

/** The `*_ns` stat whose value is the sum of a `*_hist` stat's observations. */
function sumOf(name: string, stats: StatsResult["stats"]): bigint | undefined {
  if (!name.endsWith("_hist")) return undefined;
  const sum = stats.get(`${name.slice(0, -"_hist".length)}_ns`);
  return sum?.kind === "scalar" ? sum.value : undefined;
}

function addStats(
  out: StatSet,
  place: StatPlace,
  result: { stats: StatsResult["stats"]; schemas: Map<string, StatSchema> },
): void {
  for (const [name, value] of result.stats) {
    out.add({
      ...place,
      name,
      type: qmpStatType(name, result.schemas.get(name)),
      value: histogramOrScalar(name, value, result.stats),
      source: "qmp",
    });
  }
}

function histogramOrScalar(
  name: string,
  value: StatValue,
  stats: StatsResult["stats"],
): bigint | { buckets: bigint[]; sum: bigint | undefined } {
  if (value.kind === "scalar") return value.value;
  return { buckets: value.buckets, sum: sumOf(name, stats) };
}

/**
 * Creates the QMP collector. Every scrape connects, queries and closes: QEMU
 * serves one client per monitor and other tools on the host need it too.
 *
 * @param options Timeout, socket glob, procfs and logger.
 * @returns The collector.
 */
export function createQmpCollector(options: QmpCollectorOptions): Collector {
  const { timeoutMs, logger, fs } = options;
  const schemasByPid = new Map<number, StatsSchemas>();
  const globOwner = new Map<string, number>();
  const logged = new Set<string>();

  function logOnce(key: string, msg: string, fields: Record<string, string>): void {
    if (logged.has(key)) {
      logger.debug(msg, fields);
    } else {
      logged.add(key);
      logger.warn(`${msg} (logged once)`, fields);
    }
  }

  async function ownerOf(session: QmpSession): Promise<number | undefined> {
    const cpus = parseCpusFast(await session.execute("query-cpus-fast"));
    for (const cpu of cpus) {
      try {
        const tgid = parseTgid(await fs.readTextFile(`${options.procfs}/${cpu.threadId}/status`));
        if (tgid !== undefined) return tgid;
      } catch {
        // The thread is gone or procfs is not ours to read: try the next vCPU.
      }
    }
    return undefined;
  }

  async function queryStats(
    session: QmpSession,
    vm: DiscoveredVm,
    out: StatSet,
  ): Promise<number> {
    let schemas = schemasByPid.get(vm.pid);
    if (schemas === undefined) {
      schemas = parseStatsSchemas(await session.execute("query-stats-schemas"));
      schemasByPid.set(vm.pid, schemas);
    }
    const vmStats = parseQueryStats(await session.execute("query-stats", { target: "vm" }));
    const vcpuStats = parseQueryStats(await session.execute("query-stats", { target: "vcpu" }));
    const cpus = parseCpusFast(await session.execute("query-cpus-fast"));
    const indexByPath = new Map(cpus.map((cpu) => [cpu.qomPath, cpu.cpuIndex]));
    const place: StatVm = { dir: vm.dir, domain: vm.domain };
    for (const result of vmStats) {
      addStats(out, { level: "vm", vm: place, vcpu: undefined }, {
        stats: result.stats,
        schemas: schemas.vm,
      });
    }
    // debugfs's VM dir holds each vCPU stat summed over the vCPUs (exits, halt_*, pf_*): do the
    // same, so that under lockdown the VM-level exits come from here.
    const sums = new Map<string, StatValue>();
    for (const result of vcpuStats) {
      const index = indexByPath.get(result.qomPath ?? "");
      if (index === undefined) continue; // A vCPU unplugged between the two queries.
      addStats(out, { level: "vcpu", vm: place, vcpu: String(index) }, {
        stats: result.stats,
        schemas: schemas.vcpu,
      });
      for (const [name, value] of result.stats) {
        if (value.kind !== "scalar") continue;
        const sum = sums.get(name);
        sums.set(name, {
          kind: "scalar",
          value: value.value + (sum?.kind === "scalar" ? sum.value : 0n),
        });
      }
    }
    addStats(out, { level: "vm", vm: place, vcpu: undefined }, {
      stats: sums,
      schemas: schemas.vcpu,
    });
    return cpus.length;
  }

  return {
    name: QMP,
    async collect(context: ScrapeContext, out: CollectorOutput): Promise<void> {
      const { vms } = context.discovery;
      const pids = new Set(vms.map((vm) => vm.pid));
      for (const pid of schemasByPid.keys()) if (!pids.has(pid)) schemasByPid.delete(pid);
      for (const [socket, pid] of globOwner) if (!pids.has(pid)) globOwner.delete(socket);

      const byPid = new Map(vms.map((vm) => [vm.pid, vm]));
      const socketOf = new Map<DiscoveredVm, string>();
      for (const vm of vms) {
        const socket = vm.entry?.qmpSocket ?? vm.qmpSockets[0];
        if (socket !== undefined) socketOf.set(vm, socket);
      }
      const known = new Set(socketOf.values());
      const unmatched: string[] = [];
      if (options.socketGlob !== undefined) {
        for (const socket of await expandGlob(options.socketGlob, fs)) {
          if (known.has(socket)) continue;
          const vm = byPid.get(globOwner.get(socket) ?? -1);
          if (vm !== undefined && !socketOf.has(vm)) socketOf.set(vm, socket);
          else unmatched.push(socket);
        }
      }

      async function session(socket: string, vm: DiscoveredVm | undefined): Promise<void> {
        const domain = vm?.domain;
        try {
          await withQmpSession({ path: socket, timeoutMs }, async (s) => {
            let target = vm;
            if (target === undefined) {
              const owner = await ownerOf(s);
              target = byPid.get(owner ?? -1);
              if (target === undefined || socketOf.has(target)) return; // Not a VM we export.
              globOwner.set(socket, target.pid);
            }
            // Into a set of its own: a session that times out half-way adds nothing, even if its
            // last replies arrive after the scrape is over.
            const vmOut = new StatSet();
            const vcpus = await queryStats(s, target, vmOut);
            out.stats.addAll(vmOut);
            context.qmpOutcomes.set(target.dir, "ok");
            if (!context.vcpuCounts.has(target.dir)) context.vcpuCounts.set(target.dir, vcpus);
          });
        } catch (error) {
          const reason = error instanceof QmpError ? error.reason : "other";
          const message = (error as Error).message;
          if (vm !== undefined) context.qmpOutcomes.set(vm.dir, reason);
          logOnce(`${socket}\n${reason}`, "Cannot query QMP; skipping this VM's QMP stats", {
            socket,
            domain: domain ?? "",
            reason,
            err: message,
          });
        }
      }

      // Forget what was logged about sockets that are gone, so the set does not grow with churn.
      const current = new Set([...socketOf.values(), ...unmatched]);
      for (const key of logged) if (!current.has(key.split("\n")[0]!)) logged.delete(key);

      // Every VM at once: a slow or busy monitor costs only its own VM, at most the timeout.
      await Promise.all([
        ...[...socketOf].map(([vm, socket]) => session(socket, vm)),
        ...unmatched.map((socket) => session(socket, undefined)),
      ]);

      for (const vm of vms) {
        const outcome = context.qmpOutcomes.get(vm.dir);
        if (outcome === undefined) continue;
        for (const reason of QMP_ERROR_REASONS) {
          out.families.add(
            {
              name: "kvm_exporter_qmp_errors",
              help: "Whether the VM's QMP query failed in the last scrape, by reason.",
              type: "gauge",
            },
            [["domain", vm.domain], ["reason", reason]],
            outcome === reason ? 1 : 0,
          );
        }
      }
    },
  };
}
