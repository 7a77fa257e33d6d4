/**
 * Turns one domain's record from `virConnectGetAllDomainStats` (groups state,
 * vCPU and VM) into a typed structure. Pure.
 *
 * What libvirt 9.0 sends (checked with a KVM guest): `state.state` and
 * `state.reason` (int); `vcpu.current` and `vcpu.maximum` (uint); per vCPU
 * `vcpu.N.state` (int), `vcpu.N.time`, `vcpu.N.wait` and `vcpu.N.delay`
 * (ullong, ns); KVM's binary stats as `vcpu.N.<stat>.<type>` and
 * `vm.<stat>.<type>`, where `<type>` is `cur` (instant), `sum` (cumulative) or
 * `max` (peak), ullong, or boolean for the vCPU's `blocking.cur` and
 * `guest_mode.cur`. The cpu-total, balloon, block and interface groups are
 * parsed by `domain_groups.ts`.
 *
 * @module
 */

import {
  type DomainGroups,
  DomainGroupsParser,
  type Skip,
  SKIP_REASONS,
  type SkipReason,
} from "./domain_groups.ts";
import type { DomainStatsRecord, TypedParamValue } from "./remote_protocol.ts";

/** How a KVM stat accumulates: libvirt's suffix. */
export type LibvirtKvmStatType = "cur" | "sum" | "max";

/** One KVM stat as libvirt republishes it. */
export interface LibvirtKvmStat {
  /** KVM's stat name, e.g. `exits`. */
  name: string;
  /** `cur` (instant), `sum` (cumulative) or `max` (peak). */
  type: LibvirtKvmStatType;
  /** The value; a boolean is 1 or 0. Integers stay exact. */
  value: bigint | number;
}

/** One vCPU's stats. */
export interface VcpuStats {
  /** The vCPU's number, N in `vcpu.N.*`. */
  index: number;
  /** `vcpu.N.state`: `virVcpuState` (0 offline, 1 running, 2 blocked). */
  state?: number;
  /** `vcpu.N.time`: CPU time in ns (libvirt rounds it to clock ticks). */
  timeNs?: bigint;
  /** `vcpu.N.wait`: time waiting for I/O in ns (0 without kernel schedstats). */
  waitNs?: bigint;
  /** `vcpu.N.delay`: time runnable but not running (steal, as the guest sees it), in ns. */
  delayNs?: bigint;
  /** KVM's per-vCPU stats, in libvirt's order. */
  kvm: LibvirtKvmStat[];
}

/** One domain's stats. */
export interface DomainStats {
  /** libvirt's domain name. */
  name: string;
  /** The domain's UUID, lower-case. */
  uuid: string;
  /** `state.state`: `virDomainState` (1 running, 3 paused, ...). */
  state?: number;
  /** `state.reason`: the reason code for that state. */
  stateReason?: number;
  /** `vcpu.current`. */
  vcpuCurrent?: number;
  /** `vcpu.maximum`. */
  vcpuMaximum?: number;
  /** KVM's VM-wide stats. */
  vm: LibvirtKvmStat[];
  /** The vCPUs, by index. */
  vcpus: VcpuStats[];
  /** The cpu-total, balloon, block and interface groups. */
  groups: DomainGroups;
  /**
   * One per value skipped (a bad type or range, a device unnamed, ...), at most 16: its field,
   * why, and a message naming the domain, the field and the value.
   */
  problems: Skip[];
  /** How many values were skipped, by reason (the count goes on past 16 problems). */
  skipped: Record<SkipReason, number>;
}

/** Most problem lines kept per record: a hostile peer's 200000 bad fields are counted, not kept. */
export const MAX_PROBLEMS = 16;

const KVM_STAT = /^(vm|vcpu\.(\d+))\.([A-Za-z0-9_]+)\.(cur|sum|max)$/;
const VCPU_FIELD = /^vcpu\.(\d+)\.(state|time|wait|delay)$/;

/**
 * Parses one domain's stats record. Fields this parser does not know are
 * ignored; a known field with an unexpected value type is reported in
 * `problems` and skipped.
 *
 * @example Parse a vCPU's time and a KVM stat
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseDomainStats } from "./domain_stats.ts";
 *
 * const stats = parseDomainStats({
 *   domain: { name: "web", uuid: "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21", id: 1 },
 *   params: [["vcpu.0.time", 40000000n], ["vcpu.0.exits.sum", 204n]],
 * });
 * strictEqual(stats.vcpus[0]?.timeNs, 40000000n);
 * strictEqual(stats.vcpus[0]?.kvm[0]?.name, "exits");
 * ```
 *
 * @param record The record as the client decoded it.
 * @returns The typed stats.
 */
export function parseDomainStats(record: DomainStatsRecord): DomainStats {
  const skipped = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  const stats: DomainStats = {
    name: record.domain.name,
    uuid: record.domain.uuid,
    vm: [],
    vcpus: [],
    groups: { cpu: {}, balloon: {}, blocks: [], nets: [] },
    problems: [],
    skipped,
  };
  const skip = (problem: Skip, count = 1): void => {
    stats.skipped[problem.reason] += count;
    if (stats.problems.length < MAX_PROBLEMS) stats.problems.push(problem);
  };
  const groups = new DomainGroupsParser((problem, count) =>
    skip({ ...problem, message: `${problem.message} (domain "${stats.name}")` }, count)
  );
  const vcpus = new Map<number, VcpuStats>();
  const vcpu = (index: number): VcpuStats => {
    let entry = vcpus.get(index);
    if (entry === undefined) vcpus.set(index, entry = { index, kvm: [] });
    return entry;
  };
  const problem = (field: string, value: TypedParamValue, expected: string): void => {
    const number = typeof value === "bigint" || typeof value === "number";
    skip({
      reason: number && (value < 0 || field === "state.state") ? "range" : "type",
      field,
      message:
        `libvirt field "${field}" of domain "${stats.name}" is ${typeof value} "${value}", expected ${expected}`,
    });
  };
  for (const [field, value] of record.params) {
    const kvm = KVM_STAT.exec(field);
    if (kvm !== null) {
      const number = kvmValue(value);
      if (number === undefined) problem(field, value, "an integer or a boolean");
      else {
        const stat = { name: kvm[3]!, type: kvm[4] as LibvirtKvmStatType, value: number };
        (kvm[2] === undefined ? stats.vm : vcpu(Number(kvm[2])).kvm).push(stat);
      }
      continue;
    }
    const own = VCPU_FIELD.exec(field);
    if (own !== null) {
      parseVcpuField(
        vcpu(Number(own[1])),
        own[2]!,
        value,
        (expected) => problem(field, value, expected),
      );
      continue;
    }
    if (groups.take(field, value)) continue;
    parseDomainField(stats, field, value, (expected) => problem(field, value, expected));
  }
  stats.vcpus = [...vcpus.values()].sort((a, b) => a.index - b.index);
  stats.groups = groups.finish();
  return stats;
}

function kvmValue(value: TypedParamValue): bigint | number | undefined {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  return undefined;
}

function parseVcpuField(
  vcpu: VcpuStats,
  name: string,
  value: TypedParamValue,
  problem: (expected: string) => void,
): void {
  if (name === "state") {
    if (typeof value === "number" && Number.isInteger(value)) vcpu.state = value;
    else problem("an int");
    return;
  }
  const ns = typeof value === "bigint"
    ? value
    : typeof value === "number" && Number.isSafeInteger(value)
    ? BigInt(value)
    : undefined;
  if (ns === undefined || ns < 0n) {
    problem("a non-negative integer");
    return;
  }
  if (name === "time") vcpu.timeNs = ns;
  else if (name === "wait") vcpu.waitNs = ns;
  else vcpu.delayNs = ns;
}

/** The highest `virDomainState`, `VIR_DOMAIN_PMSUSPENDED`. */
const MAX_STATE = 7;

const DOMAIN_FIELDS = {
  "state.state": "state",
  "state.reason": "stateReason",
  "vcpu.current": "vcpuCurrent",
  "vcpu.maximum": "vcpuMaximum",
} as const;

function parseDomainField(
  stats: DomainStats,
  field: string,
  value: TypedParamValue,
  problem: (expected: string) => void,
): void {
  if (!Object.hasOwn(DOMAIN_FIELDS, field)) return;
  const key = DOMAIN_FIELDS[field as keyof typeof DOMAIN_FIELDS];
  if (typeof value !== "number" || !Number.isInteger(value)) problem("an int");
  else if (key === "state" && (value < 0 || value > MAX_STATE)) problem("a state from 0 to 7");
  else stats[key] = value;
}
