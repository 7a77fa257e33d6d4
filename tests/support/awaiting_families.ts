/**
 * The VM families (`src/metrics/vm_families.ts`) the shipped dashboard and
 * rules use before the collectors that fill them are merged (issue 17: the
 * libvirt groups, QMP's devices and the `vm_process` collector are built on
 * other branches), and those no test VM can fill.
 *
 * The tests that check the shipped files against a running exporter
 * (`tests/deploy/shipped_names_test.ts`, `tests/e2e/dashboard_coverage_test.ts`)
 * report a query over an awaited family as awaited, not failed, and fail
 * when such a family shows up: then its line here goes, and from there on an
 * empty query over it fails.
 *
 * @module
 */

/** Where the families come from, once merged. */
const LIBVIRT_QMP_STATE = "libvirt's state group, QMP query-status";
const PROCESS = "the vm_process collector (<procfs>/PID)";
const BALLOON = "libvirt's balloon group, QMP query-balloon";
const BLOCK = "libvirt's block group, QMP query-blockstats";
const NETWORK = "libvirt's interface group, QMP tap devices' <procfs>/PID/net/dev";

/**
 * Each awaited family's sample name, with the source that will fill it. Remove a line when its
 * source is merged.
 */
export const AWAITING_FAMILIES: ReadonlyMap<string, string> = new Map([
  ["kvm_vm_state", LIBVIRT_QMP_STATE],
  ["kvm_vm_state_reason", LIBVIRT_QMP_STATE],
  ["kvm_vm_cpu_seconds_total", PROCESS],
  ["kvm_vm_memory_resident_bytes", PROCESS],
  ["kvm_vm_process_io_read_bytes_total", PROCESS],
  ["kvm_vm_process_io_write_bytes_total", PROCESS],
  ["kvm_vm_memory_balloon_bytes", BALLOON],
  ["kvm_vm_block_read_bytes_total", BLOCK],
  ["kvm_vm_block_write_bytes_total", BLOCK],
  ["kvm_vm_block_read_requests_total", BLOCK],
  ["kvm_vm_block_write_requests_total", BLOCK],
  ["kvm_vm_block_errors_total", BLOCK],
  ["kvm_vm_network_receive_bytes_total", NETWORK],
  ["kvm_vm_network_transmit_bytes_total", NETWORK],
  ["kvm_vm_network_receive_packets_total", NETWORK],
  ["kvm_vm_network_transmit_packets_total", NETWORK],
  ["kvm_vm_network_receive_errors_total", NETWORK],
  ["kvm_vm_network_transmit_errors_total", NETWORK],
  ["kvm_vm_network_receive_drops_total", NETWORK],
  ["kvm_vm_network_transmit_drops_total", NETWORK],
]);

/**
 * The families only a guest can fill: its balloon driver reports them, and only when the domain
 * has a stats period. The test VMs boot firmware only, with no guest OS; merged or not, they
 * have none of these.
 */
export const GUEST_REPORTED_FAMILIES: ReadonlyMap<string, string> = new Map([
  ["kvm_vm_memory_usable_bytes", "the guest's balloon driver, with a stats period"],
  ["kvm_vm_memory_available_bytes", "the guest's balloon driver, with a stats period"],
]);

/**
 * Why a query cannot have data on this branch's test VMs, if it cannot.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { whyNoData } from "./awaiting_families.ts";
 * assert.equal(whyNoData(["kvm_vm_exits_total"]), undefined);
 * assert.match(whyNoData(["kvm_vm_state"]) ?? "", /^awaiting/);
 * ```
 *
 * @param names The metric names the query selects.
 * @returns "awaiting ..." or "needs ..." with the family and its source, or undefined.
 */
export function whyNoData(names: readonly string[]): string | undefined {
  for (const name of names) {
    const source = GUEST_REPORTED_FAMILIES.get(name);
    if (source !== undefined) return `needs ${source} (${name})`;
  }
  for (const name of names) {
    const source = AWAITING_FAMILIES.get(name);
    if (source !== undefined) return `awaiting ${source} (${name})`;
  }
  return undefined;
}
