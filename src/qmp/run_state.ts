/**
 * QEMU's run state (`query-status`) as libvirt's domain state and reason, the way libvirt itself
 * maps it when it reconnects to a running QEMU (`qemuProcessUpdateState`, with
 * `qemuMonitorVMStatusToPausedReason` in src/qemu/qemu_monitor.c): `running` is running, a guest
 * that shut down is `shutdown`, a panicked one `crashed`, a suspended one `pmsuspended`, every other
 * stopped state `paused`; the reason is libvirt's name for it (`io-error` is `io_error`), so one
 * alert matches a VM whichever source reports it. Pure.
 *
 * @module
 */

import type { RunState } from "../metrics/vm_families.ts";

/**
 * Each QEMU `RunState` (qapi/run-state.json) and the libvirt state and reason it maps to. A status
 * libvirt does not know (`colo`, and `suspended`, which libvirt learns from events) or maps to no
 * particular reason (`debug`, `internal-error`, `restore-vm`) has reason `unknown`, as in libvirt;
 * `running` has `unknown` too (libvirt's `booted` or `unpaused` come from history QMP has not). A
 * status this table lacks (a newer QEMU's) is `nostate`, with the status as the reason.
 */
export const QEMU_RUN_STATES: Readonly<Record<string, RunState>> = {
  "running": { state: "running", reason: "unknown" },
  "paused": { state: "paused", reason: "user" },
  "prelaunch": { state: "paused", reason: "user" },
  "inmigrate": { state: "paused", reason: "migration" },
  "postmigrate": { state: "paused", reason: "migration" },
  "finish-migrate": { state: "paused", reason: "migration" },
  "io-error": { state: "paused", reason: "io_error" },
  "watchdog": { state: "paused", reason: "watchdog" },
  "save-vm": { state: "paused", reason: "save" },
  "restore-vm": { state: "paused", reason: "unknown" },
  "internal-error": { state: "paused", reason: "unknown" },
  "debug": { state: "paused", reason: "unknown" },
  "colo": { state: "paused", reason: "unknown" },
  "suspended": { state: "pmsuspended", reason: "unknown" },
  "guest-panicked": { state: "crashed", reason: "panicked" },
  "shutdown": { state: "shutdown", reason: "unknown" },
};

/** Longest status kept as a reason: a label value from the peer must stay small. */
const MAX_STATUS_LENGTH = 64;

/**
 * Maps a QEMU status onto libvirt's state and reason.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { runStateOf } from "./run_state.ts";
 * assert.deepEqual(runStateOf("io-error"), { state: "paused", reason: "io_error" });
 * ```
 *
 * @param status QEMU's `status` member of `query-status`.
 * @returns The state and reason.
 */
export function runStateOf(status: string): RunState {
  return Object.hasOwn(QEMU_RUN_STATES, status)
    ? { ...QEMU_RUN_STATES[status]! }
    : { state: "nostate", reason: status };
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
 *   reason: "panicked",
 * });
 * ```
 *
 * @param reply The `return` member of the reply.
 * @returns The run state.
 * @throws {TypeError} When the reply has no string `status` of at most 64 printable ASCII
 * characters.
 */
export function parseQueryStatus(reply: unknown): RunState {
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
