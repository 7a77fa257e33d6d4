/**
 * libvirt's domain states and the reason codes of each (`virDomainState`,
 * `virDomainRunningReason`, `virDomainPausedReason`, ... in libvirt-domain.h),
 * as the lower-case names `kvm_vm_state` and `kvm_vm_state_reason` carry:
 * the enum constant's suffix, words split by `_` (`VIR_DOMAIN_PAUSED_IOERROR`
 * is `io_error`). Pure.
 *
 * @module
 */

import { VM_STATES, type VmState } from "../metrics/vm_families.ts";

/** The reason names of each state, indexed by libvirt's reason code (libvirt 10). */
const REASONS: Record<VmState, readonly string[]> = {
  nostate: ["unknown"],
  running: [
    "unknown",
    "booted",
    "migrated",
    "restored",
    "from_snapshot",
    "unpaused",
    "migration_canceled",
    "save_canceled",
    "wakeup",
    "crashed",
    "postcopy",
    "postcopy_failed",
  ],
  blocked: ["unknown"],
  paused: [
    "unknown",
    "user",
    "migration",
    "save",
    "dump",
    "io_error",
    "watchdog",
    "from_snapshot",
    "shutting_down",
    "snapshot",
    "crashed",
    "starting_up",
    "postcopy",
    "postcopy_failed",
    "api_error",
  ],
  shutdown: ["unknown", "user"],
  shutoff: [
    "unknown",
    "shutdown",
    "destroyed",
    "crashed",
    "migrated",
    "saved",
    "failed",
    "from_snapshot",
    "daemon",
  ],
  crashed: ["unknown", "panicked"],
  pmsuspended: ["unknown"],
};

/**
 * The state named by libvirt's `state.state` code.
 *
 * @param code `virDomainState`, 0 to 7.
 * @returns The state, or undefined for a code libvirt does not define.
 */
export function libvirtState(code: number): VmState | undefined {
  return Number.isInteger(code) && code >= 0 ? VM_STATES[code] : undefined;
}

/**
 * The name of libvirt's `state.reason` code for a state. A code newer than
 * this table is reported as its decimal number rather than dropped: the state
 * is still right, and the number is what `virsh domstate --reason` would map.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { libvirtReason } from "./state_reasons.ts";
 * assert.equal(libvirtReason("paused", 5), "io_error");
 * assert.equal(libvirtReason("paused", 99), "99");
 * ```
 *
 * @param state The state.
 * @param code Its reason code.
 * @returns The reason's name.
 */
export function libvirtReason(state: VmState, code: number): string {
  return REASONS[state][code] ?? String(code);
}

/**
 * Every reason name libvirt has for a state, in code order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { libvirtReasonNames } from "./state_reasons.ts";
 * assert.deepEqual(libvirtReasonNames("crashed"), ["unknown", "panicked"]);
 * ```
 *
 * @param state The state.
 * @returns Its reason names.
 */
export function libvirtReasonNames(state: VmState): readonly string[] {
  return REASONS[state];
}
