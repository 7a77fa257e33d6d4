/**
 * The qmp collector's device groups: the run state (`query-status`), the disks
 * (`query-blockstats`) and the balloon (`query-balloon`, and the guest's memory stats where
 * polling is on), asked in the VM's one QMP session after its KVM stats, and the VM families
 * they fill. A group QEMU answers with an error, or whose reply is not of its shape, costs that
 * group; a bad value that value; each is a problem counted in `kvm_exporter_qmp_problems`. A
 * session that breaks (timeout, a peer that hangs up) while a group is asked costs that group and
 * the ones after it, never the KVM stats read before them.
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import { type FamilySet, type Labels, nanosecondsAsSeconds } from "../metrics/model.ts";
import {
  addVmState,
  BLOCK_FAMILIES,
  type FamilyMeta,
  VM_FAMILIES,
} from "../metrics/vm_families.ts";
import {
  balloonPathIn,
  type GuestMemoryStats,
  parseGuestStats,
  parsePollingInterval,
  parseQueryBalloon,
  PERIPHERAL_DIRS,
} from "../qmp/balloon.ts";
import { type BlockCounters, type BlockDevice, parseBlockStats } from "../qmp/block_stats.ts";
import { QmpError, type QmpSession } from "../qmp/qmp_client.ts";
import type { ReplyProblem, ReplyProblemReason } from "../qmp/reply_problems.ts";
import { parseQueryStatus } from "../qmp/run_state.ts";
import type { RunState } from "../metrics/vm_families.ts";
import { type NameFilter, passes } from "./name_filter.ts";

/** The device groups, as their switches name them. */
export type DeviceGroup = "status" | "block" | "balloon";

/** Every device group, in the order they are asked. */
export const DEVICE_GROUPS: readonly DeviceGroup[] = ["status", "block", "balloon"];

/** The problems each group can have, as `kvm_exporter_qmp_problems` lists them. */
export const GROUP_PROBLEMS: Readonly<Record<DeviceGroup, readonly ReplyProblemReason[]>> = {
  status: ["error_reply", "bad_reply", "timeout", "session_broken"],
  block: [
    "error_reply",
    "bad_reply",
    "bad_value",
    "too_many",
    "duplicate",
    "timeout",
    "session_broken",
  ],
  balloon: ["error_reply", "bad_reply", "bad_value", "timeout", "session_broken"],
};

/** The most disks reported per VM; the rest are counted as `too_many`. */
export const MAX_DEVICES_PER_VM = 256;

/** What the device groups are asked with. */
export interface DeviceQuery {
  /** The groups switched on. */
  groups: ReadonlySet<DeviceGroup>;
  /** Which disks are reported. */
  devices: NameFilter;
  /** Each VMM's balloon QOM path, `null` when it has none; found once per VMM. */
  balloonPaths: Map<number, string | null>;
}

/** What one VM's device groups found. */
export interface DeviceReport {
  /** The run state. */
  runState?: RunState;
  /** The disks. */
  block?: BlockDevice[];
  /** The balloon's `actual`, bytes. */
  balloon?: bigint;
  /** The guest's memory stats. */
  guest?: GuestMemoryStats;
  /** What was left out, by group. */
  problems: { group: DeviceGroup; problem: ReplyProblem }[];
  /** The group being asked, while it is. */
  asking?: DeviceGroup;
}

/**
 * Whether an error leaves the session usable: an error reply, or a reply the parser refused.
 * Anything else (timeout, a broken stream) ends the session.
 *
 * @param error What a query threw.
 * @returns True when the next command can still be sent.
 */
export function sessionSurvives(error: unknown): boolean {
  return (error instanceof QmpError && error.code !== undefined) || error instanceof TypeError;
}

/** Runs one group; a failure that leaves the session usable is a problem of the group. */
async function inGroup(
  report: DeviceReport,
  group: DeviceGroup,
  run: () => Promise<void>,
): Promise<void> {
  report.asking = group;
  try {
    await run();
  } catch (error) {
    if (!sessionSurvives(error)) throw error;
    const reason: ReplyProblemReason = error instanceof TypeError ? "bad_reply" : "error_reply";
    report.problems.push({ group, problem: { reason, detail: (error as Error).message } });
  }
  delete report.asking;
}

/** What each group puts in a report. */
const GROUP_FIELDS: Readonly<
  Record<DeviceGroup, readonly ("runState" | "block" | "balloon" | "guest")[]>
> = {
  status: ["runState"],
  block: ["block"],
  balloon: ["balloon", "guest"],
};

/**
 * What is left of a report when the session broke (timeout, a peer that hung up) while one of its
 * groups was asked: the groups that answered before, and that group as a problem (`timeout` or
 * `session_broken`) without what it had found. The groups after it were not asked.
 *
 * @param report The report as the session left it, with the group being asked.
 * @param error What ended the session.
 * @returns A new report.
 */
export function afterLostSession(report: DeviceReport, error: unknown): DeviceReport {
  const group = report.asking;
  const settled: DeviceReport = { ...report, problems: [...report.problems] };
  delete settled.asking;
  if (group === undefined) return settled;
  for (const field of GROUP_FIELDS[group]) delete settled[field];
  settled.problems = settled.problems.filter((p) => p.group !== group);
  const reason = error instanceof QmpError && error.reason === "timeout"
    ? "timeout"
    : "session_broken";
  settled.problems.push({ group, problem: { reason, detail: (error as Error).message } });
  return settled;
}

/** Whether QEMU said there is no balloon, which is no problem. */
function noBalloon(error: unknown): boolean {
  return error instanceof QmpError && error.code === "DeviceNotActive";
}

/** The balloon's QOM path, searched once per VMM. */
async function balloonPath(
  session: QmpSession,
  where: { pid: number; paths: Map<number, string | null> },
): Promise<string | null> {
  const known = where.paths.get(where.pid);
  if (known !== undefined) return known;
  let found: string | null = null;
  for (const dir of PERIPHERAL_DIRS) {
    let listing: unknown;
    try {
      listing = await session.execute("qom-list", { path: dir });
    } catch (error) {
      // A machine without anonymous devices has no such dir.
      if (error instanceof QmpError && error.code !== undefined) continue;
      throw error;
    }
    found = balloonPathIn(dir, listing) ?? null;
    if (found !== null) break;
  }
  where.paths.set(where.pid, found);
  return found;
}

/** The guest's memory stats where polling is on; undefined where it is off or the device went. */
async function guestStats(
  session: QmpSession,
  where: { pid: number; paths: Map<number, string | null>; report: DeviceReport },
): Promise<GuestMemoryStats | undefined> {
  const path = await balloonPath(session, where);
  if (path === null) return undefined;
  let interval: unknown;
  try {
    interval = await session.execute("qom-get", {
      path,
      property: "guest-stats-polling-interval",
    });
  } catch (error) {
    // The device went (hot-unplugged): look for it again next time.
    if (error instanceof QmpError && error.code !== undefined) where.paths.delete(where.pid);
    throw error;
  }
  if (parsePollingInterval(interval) === 0n) return undefined;
  const { stats, problems } = parseGuestStats(
    await session.execute("qom-get", { path, property: "guest-stats" }),
  );
  for (const problem of problems) where.report.problems.push({ group: "balloon", problem });
  return stats;
}

async function queryBalloon(
  session: QmpSession,
  where: { pid: number; paths: Map<number, string | null>; report: DeviceReport },
): Promise<void> {
  let reply: unknown;
  try {
    reply = await session.execute("query-balloon");
  } catch (error) {
    if (noBalloon(error)) return;
    throw error;
  }
  where.report.balloon = parseQueryBalloon(reply);
  const guest = await guestStats(session, where);
  if (guest !== undefined) where.report.guest = guest;
}

/**
 * Asks one VM's device groups in its open session, in turn, into `report`; while a group is asked,
 * `report.asking` names it (see {@linkcode afterLostSession}).
 *
 * @param session The VM's session.
 * @param target The VMM's pid, what to ask, and the report to fill.
 * @throws {QmpError} When the session broke.
 */
export async function queryDevices(
  session: QmpSession,
  target: { pid: number; query: DeviceQuery; report: DeviceReport },
): Promise<void> {
  const { pid, query, report } = target;
  if (query.groups.has("status")) {
    await inGroup(report, "status", async () => {
      report.runState = parseQueryStatus(await session.execute("query-status"));
    });
  }
  if (query.groups.has("block")) {
    await inGroup(report, "block", async () => {
      const { devices, problems } = parseBlockStats(await session.execute("query-blockstats"), {
        maxDevices: MAX_DEVICES_PER_VM,
        accept: (device) => passes(query.devices, device),
      });
      report.block = devices;
      for (const problem of problems) report.problems.push({ group: "block", problem });
    });
  }
  if (query.groups.has("balloon")) {
    await inGroup(
      report,
      "balloon",
      () => queryBalloon(session, { pid, paths: query.balloonPaths, report }),
    );
  }
}

/** Each block counter, its family, and its value's unit. */
const BLOCK_COUNTERS: readonly [keyof BlockCounters, FamilyMeta, "ns" | "count"][] = [
  ["readBytes", BLOCK_FAMILIES.readBytes, "count"],
  ["readRequests", BLOCK_FAMILIES.readRequests, "count"],
  ["readNs", BLOCK_FAMILIES.readSeconds, "ns"],
  ["writeBytes", BLOCK_FAMILIES.writeBytes, "count"],
  ["writeRequests", BLOCK_FAMILIES.writeRequests, "count"],
  ["writeNs", BLOCK_FAMILIES.writeSeconds, "ns"],
  ["flushRequests", BLOCK_FAMILIES.flushRequests, "count"],
  ["flushNs", BLOCK_FAMILIES.flushSeconds, "ns"],
  ["errors", BLOCK_FAMILIES.errors, "count"],
];

function addBlock(out: FamilySet, domain: string, devices: readonly BlockDevice[]): void {
  for (const disk of devices) {
    const labels: Labels = [["domain", domain], ["device", disk.device]];
    out.add(BLOCK_FAMILIES.info, [
      ...labels,
      ["drive", disk.drive],
      ["qdev", disk.qdev],
    ], 1);
    for (const [key, family, unit] of BLOCK_COUNTERS) {
      const value = disk.counters[key];
      if (value !== undefined) {
        out.add(family, labels, unit === "ns" ? nanosecondsAsSeconds(value) : value);
      }
    }
  }
}

/** Each guest memory stat and its family. */
const GUEST_FAMILIES: readonly [keyof GuestMemoryStats, FamilyMeta][] = [
  ["total", VM_FAMILIES.available],
  ["available", VM_FAMILIES.usable],
  ["free", VM_FAMILIES.unused],
  ["diskCaches", VM_FAMILIES.diskCaches],
  ["majorFaults", VM_FAMILIES.majorFaults],
  ["minorFaults", VM_FAMILIES.minorFaults],
  ["swapIn", VM_FAMILIES.swapIn],
  ["swapOut", VM_FAMILIES.swapOut],
  ["lastUpdate", VM_FAMILIES.statsUpdated],
];

/**
 * Adds what one VM's device groups found to the VM families.
 *
 * @param out Where the families go.
 * @param vm The VM and its report.
 */
export function addDeviceFamilies(
  out: FamilySet,
  vm: { vm: DiscoveredVm; report: DeviceReport },
): void {
  const { domain } = vm.vm;
  const { report } = vm;
  if (report.runState !== undefined) addVmState(out, { domain, ...report.runState });
  if (report.block !== undefined) addBlock(out, domain, report.block);
  if (report.balloon !== undefined) {
    out.add(VM_FAMILIES.balloon, [["domain", domain]], report.balloon);
  }
  for (const [key, family] of GUEST_FAMILIES) {
    const value = report.guest?.[key];
    if (value !== undefined) out.add(family, [["domain", domain]], value);
  }
}

/**
 * Adds `kvm_exporter_qmp_problems{group,reason}`: the parts of device replies left out in the
 * scrape, over all VMs, for each group switched on.
 *
 * @param out Where the family goes.
 * @param counts The groups switched on, and every problem of the scrape.
 */
export function addProblems(
  out: FamilySet,
  counts: {
    groups: ReadonlySet<DeviceGroup>;
    problems: readonly DeviceReport["problems"][number][];
  },
): void {
  for (const group of DEVICE_GROUPS) {
    if (!counts.groups.has(group)) continue;
    for (const reason of GROUP_PROBLEMS[group]) {
      out.add(
        {
          name: "kvm_exporter_qmp_problems",
          help: "Parts of QMP device replies (a query, a device, a value) left out in the last " +
            "scrape, by group and reason.",
          type: "gauge",
        },
        [["group", group], ["reason", reason]],
        counts.problems.reduce(
          (n, p) =>
            p.group === group && p.problem.reason === reason ? n + (p.problem.count ?? 1) : n,
          0,
        ),
      );
    }
  }
}
