/**
 * The KVM statistics the kernel defines, with their kind, unit and a plain
 * HELP sentence: the generic VM and vCPU stats (`KVM_GENERIC_VM_STATS`,
 * `KVM_GENERIC_VCPU_STATS` in include/linux/kvm_host.h), the x86 ones
 * (arch/x86/kvm/x86.c), the arm64 ones (arch/arm64/kvm/guest.c), and the
 * per-vCPU debugfs files that are not stats descriptors (virt/kvm/kvm_main.c,
 * arch/x86/kvm/debugfs.c).
 *
 * @module
 */

import type { StatKind, StatType, StatUnit } from "./stat.ts";

/** Which part of the kernel defines a stat. */
export type CatalogGroup = "generic" | "x86" | "arm64" | "debugfs";

/** One statistic the kernel defines. */
export interface CatalogEntry {
  /** The name KVM gives it (debugfs file and QMP stat). */
  name: string;
  /** Whether the kernel keeps it per VM or per vCPU (debugfs sums vCPU stats up the tree). */
  target: "vm" | "vcpu";
  /** What it means over time. */
  kind: StatKind;
  /** Its unit, if any. */
  unit?: StatUnit;
  /** Exponent of the unit's base-10 scale (-9 for nanoseconds). */
  exponent?: number;
  /** Where the kernel defines it. */
  group: CatalogGroup;
  /** One plain sentence. */
  help: string;
  /** The name in the prometheus scheme, where KVM's would break its conventions. */
  prometheusStem?: string;
}

const NS = { unit: "seconds", exponent: -9 } as const;

function counter(target: "vm" | "vcpu", group: CatalogGroup, name: string, help: string) {
  return { name, target, kind: "cumulative", group, help } as const;
}

/** Every stat of the catalog. */
export const CATALOG: readonly CatalogEntry[] = [
  counter("vm", "generic", "remote_tlb_flush", "TLB flushes KVM made on all vCPUs of the VM."),
  counter(
    "vm",
    "generic",
    "remote_tlb_flush_requests",
    "Requests to flush the TLBs of all vCPUs of the VM.",
  ),
  counter("vcpu", "generic", "halt_successful_poll", "Halts that ended while KVM polled."),
  counter("vcpu", "generic", "halt_attempted_poll", "Halts during which KVM polled."),
  counter(
    "vcpu",
    "generic",
    "halt_poll_invalid",
    "Halt polls that ended because the vCPU could not run.",
  ),
  counter("vcpu", "generic", "halt_wakeup", "Wake-ups of a halted vCPU."),
  {
    ...counter(
      "vcpu",
      "generic",
      "halt_poll_success_ns",
      "Time spent in halt polls that succeeded.",
    ),
    ...NS,
  },
  {
    ...counter("vcpu", "generic", "halt_poll_fail_ns", "Time spent in halt polls that failed."),
    ...NS,
  },
  {
    ...counter("vcpu", "generic", "halt_wait_ns", "Time halted vCPUs waited to be woken up."),
    ...NS,
  },
  {
    name: "halt_poll_success_hist",
    target: "vcpu",
    kind: "log2_hist",
    ...NS,
    group: "generic",
    help: "Durations of halt polls that succeeded.",
  },
  {
    name: "halt_poll_fail_hist",
    target: "vcpu",
    kind: "log2_hist",
    ...NS,
    group: "generic",
    help: "Durations of halt polls that failed.",
  },
  {
    name: "halt_wait_hist",
    target: "vcpu",
    kind: "log2_hist",
    ...NS,
    group: "generic",
    help: "Durations of halt waits.",
  },
  {
    name: "blocking",
    target: "vcpu",
    kind: "boolean",
    unit: "boolean",
    group: "generic",
    help: "Whether the vCPU is blocked waiting for an event.",
  },
  counter("vm", "x86", "mmu_shadow_zapped", "Shadow pages zapped."),
  counter("vm", "x86", "mmu_pte_write", "Guest writes to shadowed page tables."),
  counter("vm", "x86", "mmu_pde_zapped", "Shadow page directory entries zapped."),
  counter("vm", "x86", "mmu_flooded", "Shadow pages unshadowed after repeated guest writes."),
  counter("vm", "x86", "mmu_recycled", "Shadow pages reclaimed to stay under the page limit."),
  counter("vm", "x86", "mmu_cache_miss", "Shadow pages created because none could be reused."),
  {
    name: "mmu_unsync",
    target: "vm",
    kind: "instant",
    group: "x86",
    help: "Shadow pages currently out of sync with the guest page tables.",
  },
  {
    name: "pages_4k",
    target: "vm",
    kind: "instant",
    group: "x86",
    help: "Guest memory mapped with 4 KiB pages, in pages.",
  },
  {
    name: "pages_2m",
    target: "vm",
    kind: "instant",
    group: "x86",
    help: "Guest memory mapped with 2 MiB pages, in pages.",
  },
  {
    name: "pages_1g",
    target: "vm",
    kind: "instant",
    group: "x86",
    help: "Guest memory mapped with 1 GiB pages, in pages.",
  },
  {
    name: "nx_lpage_splits",
    target: "vm",
    kind: "instant",
    group: "x86",
    help: "Huge pages currently split to work around the NX huge page erratum.",
  },
  {
    name: "max_mmu_rmap_size",
    target: "vm",
    kind: "peak",
    group: "x86",
    help: "Largest reverse map seen for one guest page.",
  },
  {
    name: "max_mmu_page_hash_collisions",
    target: "vm",
    kind: "peak",
    group: "x86",
    help: "Most collisions seen in one bucket of the shadow page hash.",
  },
  counter("vcpu", "x86", "pf_taken", "Page faults KVM handled."),
  counter("vcpu", "x86", "pf_fixed", "Page faults fixed by mapping the page."),
  counter("vcpu", "x86", "pf_emulate", "Page faults that needed instruction emulation."),
  counter("vcpu", "x86", "pf_spurious", "Page faults that were already fixed."),
  counter("vcpu", "x86", "pf_fast", "Page faults fixed without taking the MMU lock."),
  counter("vcpu", "x86", "pf_mmio_spte_created", "Page faults that created an MMIO mapping."),
  counter("vcpu", "x86", "pf_guest", "Page faults reflected into the guest."),
  counter("vcpu", "x86", "tlb_flush", "TLB flushes of the vCPU."),
  counter("vcpu", "x86", "invlpg", "Guest INVLPG instructions emulated."),
  counter("vcpu", "x86", "exits", "Exits from the guest to KVM."),
  counter("vcpu", "x86", "io_exits", "Exits to user space for port I/O."),
  counter("vcpu", "x86", "mmio_exits", "Exits to user space for MMIO."),
  counter("vcpu", "x86", "signal_exits", "Exits to user space because a signal was pending."),
  counter("vcpu", "x86", "irq_window_exits", "Exits to inject an interrupt when the guest allows."),
  counter("vcpu", "x86", "nmi_window_exits", "Exits to inject an NMI when the guest allows."),
  counter("vcpu", "x86", "l1d_flush", "L1 data cache flushes before entering the guest."),
  counter("vcpu", "x86", "halt_exits", "Exits because the guest executed HLT."),
  counter("vcpu", "x86", "request_irq_exits", "Exits to user space to inject an interrupt."),
  counter("vcpu", "x86", "irq_exits", "Exits caused by host external interrupts."),
  counter("vcpu", "x86", "host_state_reload", "Full reloads of the host state."),
  counter("vcpu", "x86", "fpu_reload", "Reloads of the guest FPU state."),
  counter("vcpu", "x86", "insn_emulation", "Guest instructions emulated by KVM."),
  counter("vcpu", "x86", "insn_emulation_fail", "Guest instructions KVM failed to emulate."),
  counter("vcpu", "x86", "hypercalls", "Hypercalls made by the guest."),
  counter("vcpu", "x86", "irq_injections", "Interrupts injected into the guest."),
  counter("vcpu", "x86", "nmi_injections", "NMIs injected into the guest."),
  counter("vcpu", "x86", "req_event", "Event requests processed before entering the guest."),
  counter("vcpu", "x86", "nested_run", "Entries into a nested guest."),
  counter("vcpu", "x86", "directed_yield_attempted", "Attempts to yield to another vCPU."),
  counter("vcpu", "x86", "directed_yield_successful", "Yields to another vCPU that succeeded."),
  counter("vcpu", "x86", "preemption_reported", "Preemptions reported to the guest."),
  counter("vcpu", "x86", "preemption_other", "Preemptions not reported to the guest."),
  {
    name: "guest_mode",
    target: "vcpu",
    kind: "boolean",
    unit: "boolean",
    group: "x86",
    help: "Whether the vCPU runs a nested guest.",
  },
  counter("vcpu", "x86", "notify_window_exits", "Exits because the notify window expired."),
  counter("vcpu", "arm64", "hvc_exit_stat", "Exits for HVC calls."),
  counter("vcpu", "arm64", "wfe_exit_stat", "Exits for WFE instructions."),
  counter("vcpu", "arm64", "wfi_exit_stat", "Exits for WFI instructions."),
  counter("vcpu", "arm64", "mmio_exit_user", "MMIO exits handled in user space."),
  counter("vcpu", "arm64", "mmio_exit_kernel", "MMIO exits handled in the kernel."),
  {
    name: "pid",
    target: "vcpu",
    kind: "instant",
    group: "debugfs",
    help: "The host thread that runs the vCPU.",
  },
  {
    name: "tsc-offset",
    target: "vcpu",
    kind: "instant",
    group: "debugfs",
    help: "Offset added to the host TSC to give the guest TSC.",
  },
  {
    name: "lapic_timer_advance_ns",
    target: "vcpu",
    kind: "instant",
    ...NS,
    group: "debugfs",
    help: "How early the local APIC timer fires to hide the entry latency.",
  },
  {
    name: "tsc-scaling-ratio",
    target: "vcpu",
    kind: "instant",
    group: "debugfs",
    help: "Ratio of the guest TSC rate to the host's, in fixed point.",
  },
  {
    name: "tsc-scaling-ratio-frac-bits",
    target: "vcpu",
    kind: "instant",
    group: "debugfs",
    help: "Fraction bits of the TSC scaling ratio.",
    // "_bits" reads as a unit to promtool, which wants bytes.
    prometheusStem: "tsc_scaling_ratio_frac_width",
  },
];

const BY_NAME = new Map(CATALOG.map((entry) => [entry.name, entry]));

/**
 * Looks a stat up in the catalog.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { catalogEntry } from "./catalog.ts";
 * assert(catalogEntry("halt_wait_ns")?.kind === "cumulative");
 * ```
 *
 * @param name The stat's KVM name.
 * @returns Its entry, or undefined.
 */
export function catalogEntry(name: string): CatalogEntry | undefined {
  return BY_NAME.get(name);
}

/**
 * The type the catalog gives a stat.
 *
 * @param name The stat's KVM name.
 * @returns Its type, or undefined when the catalog does not know it.
 */
export function catalogType(name: string): StatType | undefined {
  const entry = BY_NAME.get(name);
  if (entry === undefined) return undefined;
  return {
    kind: entry.kind,
    unit: entry.unit,
    base: 10,
    exponent: entry.exponent ?? 0,
    bucketSize: 0,
    origin: "catalog",
  };
}
