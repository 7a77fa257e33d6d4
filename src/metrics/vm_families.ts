/**
 * The VM families several sources fill: run state, CPU, memory, disk and
 * network. They have Prometheus names only, in both naming schemes, and one
 * series per identity whatever the source: each source adds the same family
 * with the same labels, and the runner merges outputs in registry order, so
 * the first source in that order that has a value supplies it (docs/metrics.md,
 * "Which source supplies a VM's stats").
 *
 * Disks and interfaces carry only `{domain,device}` or `{domain,interface}`;
 * what identifies them further (path, bus, MAC) is in one info family each,
 * to join on.
 *
 * @module
 */

import type { FamilySet, MetricFamily } from "./model.ts";

/** A family's name, HELP and TYPE. */
export type FamilyMeta = Omit<MetricFamily, "samples">;

function gauge(name: string, help: string): FamilyMeta {
  return { name, help, type: "gauge" };
}

function counter(name: string, help: string): FamilyMeta {
  return { name, help, type: "counter" };
}

/**
 * The run states of `kvm_vm_state`, libvirt's `virDomainState` names; QMP's
 * run states map onto them (qmp/run_state.ts).
 */
export const VM_STATES = [
  "nostate",
  "running",
  "blocked",
  "paused",
  "shutdown",
  "shutoff",
  "crashed",
  "pmsuspended",
] as const;

/** One of {@linkcode VM_STATES}. */
export type VmState = typeof VM_STATES[number];

/** A VM's run state and why it is in it, as a source reported them. */
export interface RunState {
  /** The state. */
  state: VmState;
  /** libvirt's reason name (`user`, `io_error`, ...), or the source's word where none maps. */
  reason: string;
}

/** The VM-level families, by what they measure. */
export const VM_FAMILIES = {
  state: gauge(
    "kvm_vm_state",
    "The VM's run state: one series per state, 1 for the current one (libvirt, QMP query-status).",
  ),
  stateReason: gauge(
    "kvm_vm_state_reason",
    "Why the VM is in its state: 1, with the state and the reason (libvirt's reason, QMP's status).",
  ),
  cpu: counter(
    "kvm_vm_cpu_seconds_total",
    "CPU time of the VM's VMM process, all its threads, by mode (libvirt cpu.user/cpu.system, else <procfs>/PID/stat).",
  ),
  cpuTotal: counter(
    "kvm_vm_cpu_time_seconds_total",
    "CPU time of the VM's VMM process, all modes (libvirt cpu.time, else <procfs>/PID/stat).",
  ),
  resident: gauge(
    "kvm_vm_memory_resident_bytes",
    "Resident memory of the VM's VMM process (libvirt balloon.rss, else <procfs>/PID/status VmRSS).",
  ),
  balloon: gauge(
    "kvm_vm_memory_balloon_bytes",
    "Memory the guest has with the balloon inflated as it is (libvirt balloon.current, QMP query-balloon).",
  ),
  maximum: gauge(
    "kvm_vm_memory_maximum_bytes",
    "Memory the guest can have with the balloon deflated (libvirt balloon.maximum).",
  ),
  available: gauge(
    "kvm_vm_memory_available_bytes",
    "Guest-reported total memory (balloon stats; only when the domain has a stats period).",
  ),
  usable: gauge(
    "kvm_vm_memory_usable_bytes",
    "Guest-reported memory usable without swapping (balloon stats; only with a stats period).",
  ),
  unused: gauge(
    "kvm_vm_memory_unused_bytes",
    "Guest-reported free memory (balloon stats; only with a stats period).",
  ),
  diskCaches: gauge(
    "kvm_vm_memory_disk_caches_bytes",
    "Guest-reported memory in disk caches, reclaimable (balloon stats; only with a stats period).",
  ),
  majorFaults: counter(
    "kvm_vm_memory_major_faults_total",
    "Guest-reported major page faults (balloon stats; only with a stats period).",
  ),
  minorFaults: counter(
    "kvm_vm_memory_minor_faults_total",
    "Guest-reported minor page faults (balloon stats; only with a stats period).",
  ),
  swapIn: counter(
    "kvm_vm_memory_swap_in_bytes_total",
    "Guest-reported memory swapped in (balloon stats; only with a stats period).",
  ),
  swapOut: counter(
    "kvm_vm_memory_swap_out_bytes_total",
    "Guest-reported memory swapped out (balloon stats; only with a stats period).",
  ),
  statsUpdated: gauge(
    "kvm_vm_memory_stats_update_timestamp_seconds",
    "When the guest last reported its balloon stats, Unix time.",
  ),
  processThreads: gauge(
    "kvm_vm_process_threads",
    "Threads of the VM's VMM process (<procfs>/PID/status).",
  ),
  processStart: gauge(
    "kvm_vm_process_start_time_seconds",
    "Start time of the VM's VMM process, Unix time (<procfs>/PID/stat and /proc/stat btime).",
  ),
  processReadBytes: counter(
    "kvm_vm_process_io_read_bytes_total",
    "Bytes the VM's VMM process had read from storage (<procfs>/PID/io read_bytes, where readable).",
  ),
  processWriteBytes: counter(
    "kvm_vm_process_io_write_bytes_total",
    "Bytes the VM's VMM process caused to be written to storage (<procfs>/PID/io write_bytes, where readable).",
  ),
} as const satisfies Record<string, FamilyMeta>;

/** The per-disk families, labels `{domain,device}`. */
export const BLOCK_FAMILIES = {
  info: gauge(
    "kvm_vm_block_info",
    "A VM's disk: 1, with its path and bus where the source knows them; join on domain and device.",
  ),
  readBytes: counter("kvm_vm_block_read_bytes_total", "Bytes the guest read from the disk."),
  readRequests: counter("kvm_vm_block_read_requests_total", "Read requests of the guest."),
  readSeconds: counter("kvm_vm_block_read_seconds_total", "Time spent on the guest's reads."),
  writeBytes: counter("kvm_vm_block_write_bytes_total", "Bytes the guest wrote to the disk."),
  writeRequests: counter("kvm_vm_block_write_requests_total", "Write requests of the guest."),
  writeSeconds: counter("kvm_vm_block_write_seconds_total", "Time spent on the guest's writes."),
  flushRequests: counter("kvm_vm_block_flush_requests_total", "Flush requests of the guest."),
  flushSeconds: counter("kvm_vm_block_flush_seconds_total", "Time spent on the guest's flushes."),
  errors: counter(
    "kvm_vm_block_errors_total",
    "Failed requests: QMP's failed reads, writes and flushes (libvirt sends none for QEMU; " +
      "a disk failure there shows as kvm_vm_state_reason io_error).",
  ),
  capacity: gauge("kvm_vm_block_capacity_bytes", "Size of the disk as the guest sees it."),
  allocation: gauge(
    "kvm_vm_block_allocation_bytes",
    "Highest offset written in the disk's image, as the host sees it.",
  ),
  physical: gauge("kvm_vm_block_physical_bytes", "Size of the disk's image on the host."),
} as const satisfies Record<string, FamilyMeta>;

/**
 * The per-interface families, labels `{domain,interface}`, from the guest's
 * point of view as libvirt reports them: receive is what the guest received.
 */
export const NETWORK_FAMILIES = {
  info: gauge(
    "kvm_vm_network_info",
    "A VM's network interface: 1, with its MAC and model where the source knows them; join on domain and interface.",
  ),
  receiveBytes: counter("kvm_vm_network_receive_bytes_total", "Bytes the guest received."),
  receivePackets: counter("kvm_vm_network_receive_packets_total", "Packets the guest received."),
  receiveErrors: counter("kvm_vm_network_receive_errors_total", "Receive errors."),
  receiveDrops: counter("kvm_vm_network_receive_drops_total", "Received packets dropped."),
  transmitBytes: counter("kvm_vm_network_transmit_bytes_total", "Bytes the guest sent."),
  transmitPackets: counter("kvm_vm_network_transmit_packets_total", "Packets the guest sent."),
  transmitErrors: counter("kvm_vm_network_transmit_errors_total", "Transmit errors."),
  transmitDrops: counter("kvm_vm_network_transmit_drops_total", "Sent packets dropped."),
} as const satisfies Record<string, FamilyMeta>;

/**
 * Adds `kvm_vm_state` (one series per state, 1 for the current one) and
 * `kvm_vm_state_reason` for one VM.
 *
 * @param out Where the families go.
 * @param vm The VM's domain, its state and why it is in it.
 */
export function addVmState(
  out: FamilySet,
  vm: { domain: string; state: VmState; reason: string },
): void {
  for (const state of VM_STATES) {
    out.add(
      VM_FAMILIES.state,
      [["domain", vm.domain], ["state", state]],
      state === vm.state ? 1 : 0,
    );
  }
  out.add(
    VM_FAMILIES.stateReason,
    [["domain", vm.domain], ["state", vm.state], ["reason", vm.reason]],
    1,
  );
}
