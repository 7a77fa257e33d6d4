/**
 * One libvirt domain's state, CPU, memory, disk and network groups as the
 * shared VM families (`metrics/vm_families.ts`), in base units: ns become
 * seconds, KiB bytes. Which groups, disks and interfaces are reported is the
 * operator's choice (`--[no-]collector.libvirt.<group>`, the include and
 * exclude patterns). Pure.
 *
 * @module
 */

import { type NameFilter, passes } from "./name_filter.ts";
import type { DomainDevices } from "../libvirt/domain_devices.ts";
import type { BalloonField, BlockField, Device, NetField } from "../libvirt/domain_groups.ts";
import { BALLOON_KIB } from "../libvirt/domain_groups.ts";
import type { DomainStats } from "../libvirt/domain_stats.ts";
import { libvirtReason, libvirtState } from "../libvirt/state_reasons.ts";
import { type FamilySet, type Labels, nanosecondsAsSeconds } from "../metrics/model.ts";
import {
  addVmState,
  BLOCK_FAMILIES,
  type FamilyMeta,
  NETWORK_FAMILIES,
  VM_FAMILIES,
} from "../metrics/vm_families.ts";
import type { RunState } from "../metrics/vm_families.ts";

/** The groups an operator can switch, as the flags name them. */
export const LIBVIRT_GROUPS = ["state", "cpu", "balloon", "block", "interface"] as const;

/** One of {@linkcode LIBVIRT_GROUPS}. */
export type LibvirtGroup = typeof LIBVIRT_GROUPS[number];

/** What {@linkcode addDomainFamilies} reports. */
export interface DomainFamiliesOptions {
  /** The groups switched on. */
  groups: ReadonlySet<LibvirtGroup>;
  /** Which disks (`block.N.name`, e.g. `vda`). */
  devices: NameFilter;
  /** Which interfaces (`net.N.name`, e.g. `vnet0`). */
  interfaces: NameFilter;
}

const BALLOON: Record<BalloonField, FamilyMeta> = {
  current: VM_FAMILIES.balloon,
  maximum: VM_FAMILIES.maximum,
  rss: VM_FAMILIES.resident,
  available: VM_FAMILIES.available,
  usable: VM_FAMILIES.usable,
  unused: VM_FAMILIES.unused,
  disk_caches: VM_FAMILIES.diskCaches,
  major_fault: VM_FAMILIES.majorFaults,
  minor_fault: VM_FAMILIES.minorFaults,
  swap_in: VM_FAMILIES.swapIn,
  swap_out: VM_FAMILIES.swapOut,
  "last-update": VM_FAMILIES.statsUpdated,
};

const BLOCK: Record<BlockField, FamilyMeta> = {
  "rd.reqs": BLOCK_FAMILIES.readRequests,
  "rd.bytes": BLOCK_FAMILIES.readBytes,
  "rd.times": BLOCK_FAMILIES.readSeconds,
  "wr.reqs": BLOCK_FAMILIES.writeRequests,
  "wr.bytes": BLOCK_FAMILIES.writeBytes,
  "wr.times": BLOCK_FAMILIES.writeSeconds,
  "fl.reqs": BLOCK_FAMILIES.flushRequests,
  "fl.times": BLOCK_FAMILIES.flushSeconds,
  errors: BLOCK_FAMILIES.errors,
  capacity: BLOCK_FAMILIES.capacity,
  allocation: BLOCK_FAMILIES.allocation,
  physical: BLOCK_FAMILIES.physical,
};

/** The block fields in ns. */
const BLOCK_NS: ReadonlySet<BlockField> = new Set(["rd.times", "wr.times", "fl.times"]);

const NET: Record<NetField, FamilyMeta> = {
  "rx.bytes": NETWORK_FAMILIES.receiveBytes,
  "rx.pkts": NETWORK_FAMILIES.receivePackets,
  "rx.errs": NETWORK_FAMILIES.receiveErrors,
  "rx.drop": NETWORK_FAMILIES.receiveDrops,
  "tx.bytes": NETWORK_FAMILIES.transmitBytes,
  "tx.pkts": NETWORK_FAMILIES.transmitPackets,
  "tx.errs": NETWORK_FAMILIES.transmitErrors,
  "tx.drop": NETWORK_FAMILIES.transmitDrops,
};

/** The domain's run state, when libvirt sent a state it defines. */
function runState(stats: DomainStats): RunState | undefined {
  if (stats.state === undefined) return undefined;
  const state = libvirtState(stats.state);
  if (state === undefined) return undefined;
  return { state, reason: libvirtReason(state, stats.stateReason ?? 0) };
}

function addCpu(out: FamilySet, labels: Labels, stats: DomainStats): void {
  const { time, user, system } = stats.groups.cpu;
  if (time !== undefined) out.add(VM_FAMILIES.cpuTotal, labels, nanosecondsAsSeconds(time));
  if (user !== undefined) {
    out.add(VM_FAMILIES.cpu, [...labels, ["mode", "user"]], nanosecondsAsSeconds(user));
  }
  if (system !== undefined) {
    out.add(VM_FAMILIES.cpu, [...labels, ["mode", "system"]], nanosecondsAsSeconds(system));
  }
}

function addBalloon(out: FamilySet, labels: Labels, stats: DomainStats): void {
  for (const [field, value] of Object.entries(stats.groups.balloon)) {
    const key = field as BalloonField;
    // A domain with a stats period whose guest never reported: libvirt's 0 means never.
    if (key === "last-update" && value === 0n) continue;
    out.add(BALLOON[key], labels, BALLOON_KIB.has(key) ? value * 1024n : value);
  }
}

function addDevices<F extends string>(
  out: FamilySet,
  devices: readonly Device<F>[],
  how: {
    labels: (device: Device<F>) => Labels;
    families: Record<F, FamilyMeta>;
    ns?: ReadonlySet<F>;
    filter: NameFilter;
  },
): void {
  for (const device of devices) {
    if (!passes(how.filter, device.name)) continue;
    const labels = how.labels(device);
    for (const [field, value] of Object.entries(device.values) as [F, bigint][]) {
      out.add(
        how.families[field],
        labels,
        how.ns?.has(field) ? nanosecondsAsSeconds(value) : value,
      );
    }
  }
}

/** Label pairs for the details that are known. */
function known(pairs: readonly (readonly [string, string | undefined])[]): [string, string][] {
  return pairs.filter((pair): pair is [string, string] => pair[1] !== undefined);
}

/**
 * Adds `kvm_vm_block_info` and `kvm_vm_network_info` for one domain: its disks with their path
 * (libvirt's) and bus (the domain XML's), its interfaces with their MAC and model (the XML's),
 * where known.
 *
 * @param out Where the families go.
 * @param domain The domain's stats, its `domain` label and what its XML says of its devices.
 * @param options The groups, disks and interfaces to report.
 */
export function addDeviceInfo(
  out: FamilySet,
  domain: { label: string; stats: DomainStats; devices: DomainDevices | undefined },
  options: DomainFamiliesOptions,
): void {
  const { label, stats, devices } = domain;
  if (options.groups.has("block")) {
    for (const disk of stats.groups.blocks) {
      if (!passes(options.devices, disk.name)) continue;
      const bus = devices?.disks.get(disk.name)?.bus;
      out.add(BLOCK_FAMILIES.info, [
        ["domain", label],
        ["device", disk.name],
        ...known([["path", disk.path], ["bus", bus]]),
      ], 1);
    }
  }
  if (options.groups.has("interface")) {
    for (const net of stats.groups.nets) {
      if (!passes(options.interfaces, net.name)) continue;
      const details = devices?.interfaces.get(net.name);
      out.add(NETWORK_FAMILIES.info, [
        ["domain", label],
        ["interface", net.name],
        ...known([["mac", details?.mac], ["model", details?.model]]),
      ], 1);
    }
  }
}

/**
 * Adds one domain's families to `out`, for the groups switched on, but for the info families
 * ({@linkcode addDeviceInfo}), which may wait for the domain XML.
 *
 * @param out Where the families go.
 * @param domain The domain's stats, its `domain` label, and whether it runs (libvirt's id ≠ -1).
 * @param options The groups, disks and interfaces to report.
 * @returns The domain's run state, when libvirt sent one it defines.
 */
export function addDomainFamilies(
  out: FamilySet,
  domain: { label: string; stats: DomainStats; active: boolean },
  options: DomainFamiliesOptions,
): RunState | undefined {
  const { label, stats } = domain;
  const { groups } = options;
  const labels: Labels = [["domain", label]];
  const state = runState(stats);
  if (state !== undefined && groups.has("state")) addVmState(out, { domain: label, ...state });
  // libvirt 9.0 gives a shut-off domain the CPU time of pid 0's stat, i.e. libvirtd's own.
  if (groups.has("cpu") && domain.active) addCpu(out, labels, stats);
  if (groups.has("balloon")) addBalloon(out, labels, stats);
  if (groups.has("block")) {
    addDevices(out, stats.groups.blocks, {
      labels: (d) => [...labels, ["device", d.name]],
      families: BLOCK,
      ns: BLOCK_NS,
      filter: options.devices,
    });
  }
  if (groups.has("interface")) {
    addDevices(out, stats.groups.nets, {
      labels: (d) => [...labels, ["interface", d.name]],
      families: NET,
      filter: options.interfaces,
    });
  }
  return state;
}
