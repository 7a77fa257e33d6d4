/**
 * The `qmp` collector: KVM's binary stats as QEMU serves them over QMP
 * (`query-stats`, QEMU 7.1+). It has what debugfs hides under kernel
 * lockdown (every cumulative stat), per-vCPU counters and histograms, each
 * with KVM's schema (type, unit, scale). In the same session it asks each
 * VM's run state, disks and balloon (`qmp_devices.ts`), which any QEMU has.
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { Logger } from "../log/logger.ts";
import type { FamilySet } from "../metrics/model.ts";
import { type StatLevel, type StatSchema, StatSet, type StatVm } from "../stats/stat.ts";
import { qmpStatType } from "../stats/stat_type.ts";
import { QmpError, type QmpSession, withQmpSession } from "../qmp/qmp_client.ts";
import {
  parseCpusFast,
  parseQueryStats,
  parseStatsSchemas,
  type StatsResult,
  type StatsSchemas,
  type StatValue,
} from "../qmp/query_stats.ts";
import { SKIP_REASONS, type SkipReason, SocketOwners } from "../qmp/socket_owner.ts";
import { type IdentifiedVcpu, identifyVcpus } from "../qmp/vcpu_identities.ts";
import type { ClientErrorReason } from "../system/client_error.ts";
import type { FileSystem } from "../system/file_system.ts";
import { expandGlob } from "../qmp/glob.ts";
import { flag, regexpValue } from "../cli/flag.ts";
import type { Collector, CollectorOutput, ScrapeContext } from "./collector.ts";
import { declareCollector } from "./collector_declaration.ts";
import type { VmObservations } from "./vm_observations.ts";
import {
  addDeviceFamilies,
  addProblems,
  afterLostSession,
  type DeviceGroup,
  type DeviceQuery,
  type DeviceReport,
  queryDevices,
  sessionSurvives,
} from "./qmp_devices.ts";
import type { NameFilter } from "./name_filter.ts";

/** The name of this collector. */
export const QMP = "qmp";

/** The reasons of `kvm_exporter_qmp_errors`. */
export const QMP_ERROR_REASONS: readonly ClientErrorReason[] = [
  "timeout",
  "refused",
  "closed",
  "protocol",
  "permission",
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
  /** The device groups switched on (`--collector.qmp.status`, `.block`, `.balloon`). */
  groups: ReadonlySet<DeviceGroup>;
  /** Which disks are reported (`--collector.qmp.device-include`, `-exclude`). */
  devices: NameFilter;
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

/** Counts the sockets (found by glob or on a command line) skipped in this scrape, by reason. */
function addSkipped(out: FamilySet, skipped: ReadonlyMap<string, SkipReason>): void {
  const reasons = [...skipped.values()];
  out.addByReason({
    name: "kvm_exporter_qmp_skipped_sockets",
    help: "QMP sockets found by glob or named on a VMM's command line and not queried in " +
      "the last scrape, by reason.",
    type: "gauge",
  }, { reasons: SKIP_REASONS, count: (reason) => reasons.filter((r) => r === reason).length });
}

/** Counts, for each VM queried, the vCPUs left out in this scrape for a repeated identity. */
function addDuplicateVcpus(out: FamilySet, counts: ReadonlyMap<DiscoveredVm, number>): void {
  for (const [vm, count] of counts) {
    out.add(
      {
        name: "kvm_exporter_qmp_duplicate_vcpus",
        help: "vCPUs QMP reported in the last scrape under a cpu-index or qom-path another vCPU " +
          "of the VM has; their stats are not exported.",
        type: "gauge",
      },
      [["domain", vm.domain]],
      count,
    );
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

/** The collector's options and what it keeps across scrapes. */
interface QmpState {
  readonly options: QmpCollectorOptions;
  /** Each VMM's stats schemas, asked once per process. */
  readonly schemasByPid: Map<number, StatsSchemas>;
  readonly owners: SocketOwners;
  /** What the device groups ask, and each VMM's balloon path. */
  readonly devices: DeviceQuery;
  /** Keys (`socket\nreason`) already warned about. */
  readonly logged: Set<string>;
}

function logOnce(
  state: QmpState,
  key: string,
  message: { msg: string; fields: Record<string, string> },
): void {
  const { msg, fields } = message;
  if (state.logged.has(key)) {
    state.options.logger.debug(msg, fields);
  } else {
    state.logged.add(key);
    state.options.logger.warn(`${msg} (logged once)`, fields);
  }
}

/** One VM's open QMP session, and where its stats go. */
interface QueryTarget {
  session: QmpSession;
  vm: DiscoveredVm;
  out: StatSet;
}

async function schemasOf(state: QmpState, target: QueryTarget): Promise<StatsSchemas> {
  const { session, vm } = target;
  let schemas = state.schemasByPid.get(vm.pid);
  if (schemas === undefined) {
    schemas = parseStatsSchemas(await session.execute("query-stats-schemas"));
    state.schemasByPid.set(vm.pid, schemas);
  }
  return schemas;
}

/** Adds each vCPU's stats, and their sums at VM level. */
function addVcpuStats(
  out: StatSet,
  place: StatVm,
  query: { vcpus: readonly IdentifiedVcpu[]; schemas: StatsSchemas },
): void {
  // debugfs's VM dir holds each vCPU stat summed over the vCPUs (exits, halt_*, pf_*): do the
  // same, so that under lockdown the VM-level exits come from here.
  const sums = new Map<string, StatValue>();
  for (const { cpu, stats } of query.vcpus) {
    if (stats === undefined) continue; // A vCPU hot-plugged between the two queries.
    addStats(out, { level: "vcpu", vm: place, vcpu: String(cpu.cpuIndex) }, {
      stats,
      schemas: query.schemas.vcpu,
    });
    for (const [name, value] of stats) {
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
    schemas: query.schemas.vcpu,
  });
}

/** What one VM's queries found: its vCPU thread ids and the vCPU identities it repeated. */
interface QueryResult {
  vcpuThreads: Map<string, number>;
  duplicates: string[];
}

/** Queries one VM's stats into `out`. */
async function queryStats(state: QmpState, target: QueryTarget): Promise<QueryResult> {
  const { session, vm, out } = target;
  const schemas = await schemasOf(state, target);
  const vmStats = parseQueryStats(await session.execute("query-stats", { target: "vm" }));
  const vcpuStats = parseQueryStats(await session.execute("query-stats", { target: "vcpu" }));
  const cpus = parseCpusFast(await session.execute("query-cpus-fast"));
  const { vcpus, duplicates } = identifyVcpus(cpus, vcpuStats);
  const place: StatVm = { dir: vm.dir, domain: vm.domain };
  for (const result of vmStats) {
    addStats(out, { level: "vm", vm: place, vcpu: undefined }, {
      stats: result.stats,
      schemas: schemas.vm,
    });
  }
  addVcpuStats(out, place, { vcpus, schemas });
  const vcpuThreads = new Map(vcpus.map(({ cpu }) => [String(cpu.cpuIndex), cpu.threadId]));
  return { vcpuThreads, duplicates };
}

const CLAIM_REFUSED =
  "Cannot establish that the QMP socket on a VMM's command line is that VMM's; not querying it";
const GLOB_REFUSED =
  "Cannot establish which VM a QMP socket found by glob belongs to; not querying it";

/** Records a socket not queried, and logs it once. */
function skipSocket(
  state: QmpState,
  skipped: Map<string, SkipReason>,
  refusal: { socket: string; owner: { skipped: SkipReason; detail: string }; msg: string },
): void {
  const { socket, owner, msg } = refusal;
  skipped.set(socket, owner.skipped);
  logOnce(state, `${socket}\n${owner.skipped}`, {
    msg,
    fields: { socket, reason: owner.skipped, err: owner.detail },
  });
}

/**
 * Gives each VM without a `vm.yaml` socket the first socket its command line names, if its VMM
 * holds that socket's listener, else the glob-found socket its VMM holds the listener of; never
 * one whose owner cannot be established. Returns the sockets skipped, and why.
 */
async function matchSockets(
  state: QmpState,
  known: { vms: readonly DiscoveredVm[]; socketOf: Map<DiscoveredVm, string> },
): Promise<Map<string, SkipReason>> {
  const { options } = state;
  const { vms, socketOf } = known;
  const taken = new Set(socketOf.values());
  const found = options.socketGlob === undefined
    ? []
    : (await expandGlob(options.socketGlob, options.fs)).filter((s) => !taken.has(s));
  const claims = vms.flatMap((vm) => {
    const path = vm.qmpSockets[0];
    return socketOf.has(vm) || path === undefined ? [] : [{ vm, path, pid: vm.pid }];
  });
  const free = new Map<number, DiscoveredVm>();
  for (const vm of vms) if (!socketOf.has(vm) && !free.has(vm.pid)) free.set(vm.pid, vm);
  const skipped = new Map<string, SkipReason>();
  if (found.length === 0 && claims.length === 0) return skipped;
  const ownership = await state.owners.resolve({ found, pids: [...free.keys()], claims });
  claims.forEach(({ vm, path }, i) => {
    const owner = ownership.claims[i]!;
    if ("pid" in owner) socketOf.set(vm, path);
    else skipSocket(state, skipped, { socket: path, owner, msg: CLAIM_REFUSED });
  });
  for (const socket of found) {
    const owner = ownership.found.get(socket);
    if (owner === undefined) continue;
    if ("skipped" in owner) {
      skipSocket(state, skipped, { socket, owner, msg: GLOB_REFUSED });
      continue;
    }
    const vm = free.get(owner.pid);
    // A VMM with two monitors found by glob: the first, in path order, is queried.
    if (vm !== undefined && !socketOf.has(vm)) socketOf.set(vm, socket);
  }
  return skipped;
}

/** What one VM's QMP session reports into. */
interface SessionTarget {
  socket: string;
  vm: DiscoveredVm;
  out: CollectorOutput;
  /** Where each VM queried counts the vCPUs left out for a repeated identity. */
  duplicateVcpus: Map<DiscoveredVm, number>;
  /** Where every VM's device problems go. */
  problems: DeviceReport["problems"];
  /** The VMs whose device groups answered (QMP served them, whatever their KVM stats did). */
  answered: Set<DiscoveredVm>;
}

/** Adds a VM's device groups to the scrape: their families, its run state, their problems. */
function commitDevices(
  state: QmpState,
  session: { target: SessionTarget; report: DeviceReport },
): void {
  const { target, report } = session;
  const { vm, out } = target;
  addDeviceFamilies(out.families, { vm, report });
  // `!== undefined`: a balloon of 0 bytes (or a VM without disks) answered all the same.
  if (
    report.runState !== undefined || report.block !== undefined || report.balloon !== undefined
  ) {
    target.answered.add(vm);
  }
  if (report.runState !== undefined) {
    out.observations.observe(vm.dir, { runState: report.runState });
  }
  // No spread: a push of many arguments overflows the stack.
  for (const problem of report.problems) target.problems.push(problem);
  // Logged once per socket, group and reason.
  for (const { group, problem } of report.problems) {
    logOnce(state, `${target.socket}\n${group}:${problem.reason}`, {
      msg: "Leaving out part of a QMP device reply",
      fields: {
        socket: target.socket,
        domain: target.vm.domain,
        group,
        reason: problem.reason,
        err: problem.detail,
      },
    });
  }
}

/** Marks a VM's QMP query failed, and logs why once. */
function failVm(state: QmpState, target: SessionTarget, error: unknown): void {
  const { socket, vm, out } = target;
  const reason = error instanceof QmpError ? error.reason : "other";
  out.observations.observe(vm.dir, { outcome: reason });
  logOnce(state, `${socket}\n${reason}`, {
    msg: "Cannot query QMP; skipping this VM's QMP stats",
    fields: { socket, domain: vm.domain, reason, err: (error as Error).message },
  });
}

/** Adds a VM's KVM stats to the scrape, with its outcome. */
function commitStats(
  state: QmpState,
  session: { target: SessionTarget; vmOut: StatSet; stats: QueryResult | { error: unknown } },
): void {
  const { target, vmOut, stats } = session;
  const { socket, vm, out } = target;
  if ("error" in stats) return failVm(state, target, stats.error);
  const { vcpuThreads, duplicates } = stats;
  out.stats.addAll(vmOut);
  out.observations.observe(vm.dir, { outcome: "ok", vcpus: vcpuThreads.size, vcpuThreads });
  target.duplicateVcpus.set(vm, duplicates.length);
  if (duplicates.length > 0) {
    logOnce(state, `${socket}\nduplicate_vcpus`, {
      msg: "QMP reports vCPUs under an identity another vCPU has; not exporting the repeats",
      fields: { socket, domain: vm.domain, err: duplicates.join("; ") },
    });
  }
}

/**
 * Queries one VM: its KVM stats, then its device groups, in one session. KVM stats that QEMU
 * refuses (QEMU before 7.1) or that do not parse fail the VM's outcome, and its device groups are
 * still asked. A session that breaks before the device groups adds nothing of the VM; one that
 * breaks while a group is asked keeps the KVM stats and the groups before it, and counts that group
 * as a problem (`timeout` or `session_broken`).
 *
 * What the session found is kept in locals and added to the scrape only once the session is over,
 * from what it had then: a session that times out half-way adds nothing later, even if its last
 * replies arrive after the scrape is over.
 */
async function querySession(state: QmpState, target: SessionTarget): Promise<void> {
  const { socket, vm } = target;
  let kvm: { vmOut: StatSet; stats: QueryResult | { error: unknown } } | undefined;
  const report: DeviceReport = { problems: [] };
  let lost: { error: unknown } | undefined;
  try {
    await withQmpSession({ path: socket, timeoutMs: state.options.timeoutMs }, async (s) => {
      const vmOut = new StatSet();
      try {
        kvm = { vmOut, stats: await queryStats(state, { session: s, vm, out: vmOut }) };
      } catch (error) {
        if (!sessionSurvives(error)) throw error;
        kvm = { vmOut, stats: { error } };
      }
      await queryDevices(s, { pid: vm.pid, query: state.devices, report });
    });
  } catch (error) {
    lost = { error };
  }
  // Taken now: what the abandoned session may still do is not looked at again.
  const found = kvm;
  if (lost !== undefined && (found === undefined || report.asking === undefined)) {
    return failVm(state, target, lost.error);
  }
  if (found === undefined) return; // Not reached: a session that ends well has its KVM stats.
  commitStats(state, { target, ...found });
  commitDevices(state, {
    target,
    report: lost === undefined ? report : afterLostSession(report, lost.error),
  });
}

/** Each VM's socket from vm.yaml: the operator's word, taken as it is. */
function configuredSockets(vms: readonly DiscoveredVm[]): Map<DiscoveredVm, string> {
  const socketOf = new Map<DiscoveredVm, string>();
  for (const vm of vms) {
    const socket = vm.entry?.qmpSocket;
    if (socket !== undefined) socketOf.set(vm, socket);
  }
  return socketOf;
}

function addQmpErrors(out: CollectorOutput, context: ScrapeContext): void {
  for (const vm of context.discovery.vms) {
    const outcome = out.observations.get(vm.dir)?.outcome;
    if (outcome === undefined) continue;
    out.families.addByReason({
      name: "kvm_exporter_qmp_errors",
      help: "Whether the VM's QMP query failed in the last scrape, by reason.",
      type: "gauge",
    }, {
      reasons: QMP_ERROR_REASONS,
      count: (reason) => outcome === reason ? 1 : 0,
      labels: [["domain", vm.domain]],
    });
  }
}

async function collectQmp(
  state: QmpState,
  scrape: { context: ScrapeContext; out: CollectorOutput },
): Promise<void> {
  const { context, out } = scrape;
  const { vms } = context.discovery;
  const pids = new Set(vms.map((vm) => vm.pid));
  for (const pid of state.schemasByPid.keys()) if (!pids.has(pid)) state.schemasByPid.delete(pid);
  const balloons = state.devices.balloonPaths;
  for (const pid of balloons.keys()) if (!pids.has(pid)) balloons.delete(pid);

  const socketOf = configuredSockets(vms);
  const skipped = await matchSockets(state, { vms, socketOf });

  // Forget what was logged about sockets that are gone, so the set does not grow with churn.
  const current = new Set([...socketOf.values(), ...skipped.keys()]);
  for (const key of state.logged) if (!current.has(key.split("\n")[0]!)) state.logged.delete(key);

  // Every VM at once: a slow or busy monitor costs only its own VM, at most the timeout.
  const duplicateVcpus = new Map<DiscoveredVm, number>();
  const problems: DeviceReport["problems"] = [];
  const answered = new Set<DiscoveredVm>();
  await Promise.all(
    [...socketOf].map(([vm, socket]) =>
      querySession(state, { socket, vm, out, duplicateVcpus, problems, answered })
    ),
  );
  addSkipped(out.families, skipped);
  addProblems(out.families, { groups: state.devices.groups, problems });
  addDuplicateVcpus(out.families, duplicateVcpus);
  addQmpErrors(out, context);
  failUnlessReachedAny({ queried: [...socketOf.keys()], skipped, answered }, out.observations);
}

/**
 * The skip reasons of a socket refused by the ownership check: a socket to try, not reached. A
 * path that is not a socket (`not_socket`) is no socket to try.
 */
const REFUSED: ReadonlySet<SkipReason> = new Set(["not_listening", "ambiguous", "no_owner"]);

/**
 * Fails the collector, so that its success is 0 (node_exporter's "the collector failed"), when it
 * tried sockets and reached none: QMP that serves no VM must not look like a working one, which
 * would silence the alerts that key on its success. A socket refused by the ownership check was
 * tried and not reached; a VM whose KVM stats failed but whose device groups answered (a QEMU
 * before 7.1) was reached. Each reason stays in `kvm_exporter_qmp_errors` or
 * `kvm_exporter_qmp_skipped_sockets` (added before this throws); no socket to try is no failure.
 *
 * @param tried The VMs queried this scrape, those whose device groups answered, and the sockets
 * skipped with why.
 * @param seen Each VM's outcome ("ok" or the error reason).
 * @throws {Error} When none of `tried` was reached; the message counts the reasons.
 */
function failUnlessReachedAny(
  tried: {
    queried: readonly DiscoveredVm[];
    answered: ReadonlySet<DiscoveredVm>;
    skipped: ReadonlyMap<string, SkipReason>;
  },
  seen: VmObservations,
): void {
  const reached = (vm: DiscoveredVm) =>
    seen.get(vm.dir)?.outcome === "ok" || tried.answered.has(vm);
  if (tried.queried.some(reached)) return;
  const outcomes = tried.queried.map((vm) => seen.get(vm.dir)?.outcome ?? "other");
  outcomes.push(...[...tried.skipped.values()].filter((reason) => REFUSED.has(reason)));
  if (outcomes.length === 0) return;
  const byReason = new Map<string, number>();
  for (const reason of outcomes) byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  const reasons = [...byReason].map(([reason, n]) => `${n} ${reason}`).join(", ");
  throw new Error(
    `QMP reached none of the sockets it tried (${reasons}): each socket and reason are logged, and counted in kvm_exporter_qmp_errors or kvm_exporter_qmp_skipped_sockets`,
  );
}

/**
 * Creates the QMP collector. Every scrape connects, queries and closes: QEMU
 * serves one client per monitor and other tools on the host need it too.
 *
 * @param options Timeout, socket glob, procfs and logger.
 * @returns The collector.
 */
export function createQmpCollector(options: QmpCollectorOptions): Collector {
  const state: QmpState = {
    options,
    schemasByPid: new Map(),
    owners: new SocketOwners(options.procfs),
    devices: { groups: options.groups, devices: options.devices, balloonPaths: new Map() },
    logged: new Set(),
  };
  return {
    name: QMP,
    collect: (context: ScrapeContext, out: CollectorOutput) => collectQmp(state, { context, out }),
  };
}

/** The qmp collector's declaration: off by default (it opens each VM's monitor). */
export const QMP_COLLECTOR = declareCollector({
  name: QMP,
  defaultEnabled: false,
  flags: {
    socketGlob: flag({
      name: "collector.qmp.socket-glob",
      type: "string",
      help: "Glob of extra QMP sockets, e.g. /var/run/qemu-server/*.qmp",
      convert: (glob) => glob || undefined,
    }),
    timeoutMs: flag({
      name: "collector.qmp.timeout",
      type: "duration",
      default: "2s",
      help: "Timeout of one VM's QMP queries",
    }),
    status: flag({
      name: "collector.qmp.status",
      type: "bool",
      default: true,
      help: "Ask each VM's run state (query-status): kvm_vm_state",
    }),
    block: flag({
      name: "collector.qmp.block",
      type: "bool",
      default: true,
      help: "Ask each VM's disk counters (query-blockstats): kvm_vm_block_*",
    }),
    balloon: flag({
      name: "collector.qmp.balloon",
      type: "bool",
      default: true,
      help:
        "Ask each VM's balloon, and its guest memory stats where polling is on: kvm_vm_memory_*",
    }),
    deviceInclude: flag({
      name: "collector.qmp.device-include",
      type: "string",
      help: "Regexp of disks to report (default: all)",
      convert: regexpValue,
    }),
    deviceExclude: flag({
      name: "collector.qmp.device-exclude",
      type: "string",
      help: "Regexp of disks not to report",
      convert: regexpValue,
    }),
  },
  create: (values, { procfs, fs, logger }) => {
    const { status, block, balloon, deviceInclude, deviceExclude, ...rest } = values;
    const switches: [DeviceGroup, boolean][] = [
      ["status", status],
      ["block", block],
      ["balloon", balloon],
    ];
    return createQmpCollector({
      ...rest,
      groups: new Set(switches.filter(([, on]) => on).map(([group]) => group)),
      devices: { include: deviceInclude, exclude: deviceExclude },
      procfs,
      fs,
      logger,
    });
  },
});
