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
import { FamilySet, type Labels } from "../metrics/model.ts";
import { compatStatFamily } from "../metrics/naming.ts";
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
  type StatSchema,
  type StatsSchemas,
  type StatValue,
} from "../qmp/query_stats.ts";
import { SKIP_REASONS, type SkipReason, SocketOwners } from "../qmp/socket_owner.ts";
import type { FileSystem } from "../system/file_system.ts";
import { expandGlob } from "../system/glob.ts";
import type { Collector, ScrapeContext } from "./collector.ts";

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
  /** Glob of extra sockets, matched to VMs by which VMM holds their listening socket. */
  socketGlob: string | undefined;
  /** procfs mount point (`net/unix` and the VMMs' `fd` dirs). */
  procfs: string;
  /** File access. */
  fs: FileSystem;
  /** Logger. */
  logger: Logger;
}

function addStat(
  out: FamilySet,
  options: { stem: string; labels: Labels; value: StatValue; schema: StatSchema | undefined },
): void {
  const { stem, labels, value, schema } = options;
  const family = compatStatFamily(stem, "qmp");
  const extra = schema === undefined ? {} : { stat: schema };
  if (value.kind === "scalar") {
    out.add({ ...family, type: "gauge" }, labels, value.value, extra);
  } else {
    const sum = value.buckets.reduce((a, b) => a + b, 0n);
    out.add({ ...family, type: "histogram" }, labels, sum, { ...extra, buckets: value.buckets });
  }
}

/** Counts the glob-found sockets skipped in this scrape, by reason. */
function addSkipped(out: FamilySet, skipped: ReadonlyMap<string, SkipReason>): void {
  for (const reason of SKIP_REASONS) {
    out.add(
      {
        name: "kvm_exporter_qmp_skipped_sockets",
        help: "QMP sockets found by glob and not queried in the last scrape, by reason.",
        type: "gauge",
      },
      [["reason", reason]],
      [...skipped.values()].filter((r) => r === reason).length,
    );
  }
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
  const owners = new SocketOwners(options.procfs);
  const logged = new Set<string>();

  function logOnce(key: string, msg: string, fields: Record<string, string>): void {
    if (logged.has(key)) {
      logger.debug(msg, fields);
    } else {
      logged.add(key);
      logger.warn(`${msg} (logged once)`, fields);
    }
  }

  async function queryStats(
    session: QmpSession,
    vm: DiscoveredVm,
    out: FamilySet,
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
    for (const result of vmStats) {
      for (const [name, value] of result.stats) {
        addStat(out, {
          stem: name,
          labels: [["domain", vm.domain]],
          value,
          schema: schemas.vm.get(name),
        });
      }
    }
    // debugfs's VM dir holds each vCPU stat summed over the vCPUs (exits, halt_*, pf_*): do the
    // same, so that under lockdown kvm_stat_exits_count{domain} comes from here.
    const sums = new Map<string, bigint>();
    for (const result of vcpuStats) {
      const index = indexByPath.get(result.qomPath ?? "");
      if (index === undefined) continue; // A vCPU unplugged between the two queries.
      for (const [name, value] of result.stats) {
        addStat(out, {
          stem: `vcpu_${name}`,
          labels: [["domain", vm.domain], ["vcpu", String(index)]],
          value,
          schema: schemas.vcpu.get(name),
        });
        if (value.kind === "scalar") sums.set(name, (sums.get(name) ?? 0n) + value.value);
      }
    }
    for (const [name, sum] of sums) {
      addStat(out, {
        stem: name,
        labels: [["domain", vm.domain]],
        value: { kind: "scalar", value: sum },
        schema: schemas.vcpu.get(name),
      });
    }
    return cpus.length;
  }

  /**
   * Gives each VM without a socket the glob-found socket its VMM holds the listener of; never
   * one whose owner cannot be established. Returns the sockets skipped, and why.
   */
  async function matchGlobSockets(
    vms: readonly DiscoveredVm[],
    socketOf: Map<DiscoveredVm, string>,
  ): Promise<Map<string, SkipReason>> {
    const skipped = new Map<string, SkipReason>();
    if (options.socketGlob === undefined) return skipped;
    const known = new Set(socketOf.values());
    const found = (await expandGlob(options.socketGlob, fs)).filter((s) => !known.has(s));
    const free = new Map<number, DiscoveredVm>();
    for (const vm of vms) if (!socketOf.has(vm) && !free.has(vm.pid)) free.set(vm.pid, vm);
    const ownership = await owners.resolve(found, [...free.keys()]);
    for (const socket of found) {
      const owner = ownership.get(socket);
      if (owner === undefined) continue;
      if ("pid" in owner) {
        const vm = free.get(owner.pid);
        // A VMM with two monitors found by glob: the first, in path order, is queried.
        if (vm !== undefined && !socketOf.has(vm)) socketOf.set(vm, socket);
        continue;
      }
      skipped.set(socket, owner.skipped);
      logOnce(
        `${socket}\n${owner.skipped}`,
        "Cannot establish which VM a QMP socket found by glob belongs to; not querying it",
        { socket, reason: owner.skipped, err: owner.detail },
      );
    }
    return skipped;
  }

  return {
    name: QMP,
    async collect(context: ScrapeContext, out: FamilySet): Promise<void> {
      const { vms } = context.discovery;
      const pids = new Set(vms.map((vm) => vm.pid));
      for (const pid of schemasByPid.keys()) if (!pids.has(pid)) schemasByPid.delete(pid);

      const socketOf = new Map<DiscoveredVm, string>();
      for (const vm of vms) {
        const socket = vm.entry?.qmpSocket ?? vm.qmpSockets[0];
        if (socket !== undefined) socketOf.set(vm, socket);
      }
      const skipped = await matchGlobSockets(vms, socketOf);

      async function session(socket: string, vm: DiscoveredVm): Promise<void> {
        try {
          await withQmpSession({ path: socket, timeoutMs }, async (s) => {
            // Into a set of its own: a session that times out half-way adds nothing, even if its
            // last replies arrive after the scrape is over.
            const vmOut = new FamilySet();
            const vcpus = await queryStats(s, vm, vmOut);
            for (const family of vmOut.families()) {
              for (const { labels, value, ...extra } of family.samples) {
                out.add(family, labels, value, extra);
              }
            }
            context.qmpOutcomes.set(vm.dir, "ok");
            if (!context.vcpuCounts.has(vm.dir)) context.vcpuCounts.set(vm.dir, vcpus);
          });
        } catch (error) {
          const reason = error instanceof QmpError ? error.reason : "other";
          context.qmpOutcomes.set(vm.dir, reason);
          logOnce(`${socket}\n${reason}`, "Cannot query QMP; skipping this VM's QMP stats", {
            socket,
            domain: vm.domain,
            reason,
            err: (error as Error).message,
          });
        }
      }

      // Forget what was logged about sockets that are gone, so the set does not grow with churn.
      const current = new Set([...socketOf.values(), ...skipped.keys()]);
      for (const key of logged) if (!current.has(key.split("\n")[0]!)) logged.delete(key);

      // Every VM at once: a slow or busy monitor costs only its own VM, at most the timeout.
      await Promise.all([...socketOf].map(([vm, socket]) => session(socket, vm)));
      if (options.socketGlob !== undefined) addSkipped(out, skipped);

      for (const vm of vms) {
        const outcome = context.qmpOutcomes.get(vm.dir);
        if (outcome === undefined) continue;
        for (const reason of QMP_ERROR_REASONS) {
          out.add(
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
