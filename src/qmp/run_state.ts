/**
 * QEMU's run state (`query-status`) as libvirt's domain state, the way libvirt itself maps it when
 * it reconnects to a running QEMU (`qemuProcessUpdateState`): `running` is running, a guest that
 * shut down is `shutdown`, a panicked one `crashed`, a suspended one `pmsuspended`, and every other
 * stopped state `paused`. The QEMU status itself is the reason. Pure.
 *
 * @module
 */

import type { VmState } from "../metrics/vm_families.ts";

/** A libvirt state and QEMU's status as its reason (the shape of a VM's `runState` observation). */
export interface QemuRunState {
  /** The libvirt state. */
  state: VmState;
  /** QEMU's status. */
  reason: string;
}

/**
 * Each QEMU `RunState` (qapi/run-state.json) and the libvirt state it maps to. A status this table
 * lacks (a newer QEMU's) is `nostate`, with the status as the reason.
 */
export const QEMU_RUN_STATES: Readonly<Record<string, VmState>> = {
  "running": "running",
  "paused": "paused",
  "inmigrate": "paused",
  "postmigrate": "paused",
  "prelaunch": "paused",
  "finish-migrate": "paused",
  "restore-vm": "paused",
  "save-vm": "paused",
  "debug": "paused",
  "internal-error": "paused",
  "io-error": "paused",
  "watchdog": "paused",
  "colo": "paused",
  "suspended": "pmsuspended",
  "guest-panicked": "crashed",
  "shutdown": "shutdown",
};

/** Longest status kept as a reason: a label value from the peer must stay small. */
const MAX_STATUS_LENGTH = 64;

/**
 * Maps a QEMU status onto a libvirt state, with the status as the reason.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { runStateOf } from "./run_state.ts";
 * assert.deepEqual(runStateOf("io-error"), { state: "paused", reason: "io-error" });
 * ```
 *
 * @param status QEMU's `status` member of `query-status`.
 * @returns The state and reason.
 */
export function runStateOf(status: string): QemuRunState {
  const state = Object.hasOwn(QEMU_RUN_STATES, status) ? QEMU_RUN_STATES[status]! : "nostate";
  return { state, reason: status };
}

/**
 * Parses the `return` of `query-status` (`{"status": "running", "running": true, ...}`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseQueryStatus } from "./run_state.ts";
 * assert.deepEqual(parseQueryStatus({ status: "guest-panicked", running: false }), {
 *   state: "crashed",
 *   reason: "guest-panicked",
 * });
 * ```
 *
 * @param reply The `return` member of the reply.
 * @returns The run state.
 * @throws {TypeError} When the reply has no string `status` of at most 64 printable ASCII
 * characters.
 */
export function parseQueryStatus(reply: unknown): QemuRunState {
  const status = typeof reply === "object" && reply !== null && !Array.isArray(reply)
    ? (reply as Record<string, unknown>).status
    : undefined;
  if (
    typeof status !== "string" || status.length === 0 || status.length > MAX_STATUS_LENGTH ||
    !/^[\x21-\x7e]+$/.test(status)
  ) {
    throw new TypeError(
      `Invalid query-status reply: expected a "status" word, got ${
        JSON.stringify(status ?? null)?.slice(0, 80)
      }`,
    );
  }
  return runStateOf(status);
}
