import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { libvirtReasonNames } from "../../src/libvirt/state_reasons.ts";
import { parseQueryStatus, QEMU_RUN_STATES, runStateOf } from "../../src/qmp/run_state.ts";
import { VM_STATES, type VmState } from "../../src/metrics/vm_families.ts";

/**
 * Every QEMU RunState of qapi/run-state.json and what libvirt makes of it on reconnect
 * (`qemuMonitorVMStatusToPausedReason` and `qemuProcessUpdateState`), in libvirt's reason names.
 */
const CASES: [status: string, state: VmState, reason: string][] = [
  ["running", "running", "unknown"],
  ["paused", "paused", "user"],
  ["prelaunch", "paused", "user"],
  ["inmigrate", "paused", "migration"],
  ["postmigrate", "paused", "migration"],
  ["finish-migrate", "paused", "migration"],
  ["io-error", "paused", "io_error"],
  ["watchdog", "paused", "watchdog"],
  ["save-vm", "paused", "save"],
  ["restore-vm", "paused", "unknown"],
  ["internal-error", "paused", "unknown"],
  ["debug", "paused", "unknown"],
  ["colo", "paused", "unknown"],
  ["suspended", "pmsuspended", "unknown"],
  ["guest-panicked", "crashed", "panicked"],
  ["shutdown", "shutdown", "unknown"],
  // A status of a newer QEMU, and names that only look like table keys: the status is the reason.
  ["some-new-state", "nostate", "some-new-state"],
  ["toString", "nostate", "toString"],
  ["__proto__", "nostate", "__proto__"],
];

Deno.test("runStateOf() maps each QEMU status onto libvirt's state and reason", () => {
  for (const [status, state, reason] of CASES) {
    deepStrictEqual(runStateOf(status), { state, reason }, status);
  }
});

Deno.test("runStateOf()'s reasons are libvirt's reason names of their state", () => {
  for (const [status, state, reason] of CASES) {
    if (state === "nostate") continue;
    ok(libvirtReasonNames(state).includes(reason), `${status}: ${state}/${reason}`);
  }
});

Deno.test("QEMU_RUN_STATES covers every QEMU RunState and maps only onto VM_STATES", () => {
  deepStrictEqual(
    Object.keys(QEMU_RUN_STATES).sort(),
    CASES.filter(([, s]) => s !== "nostate").map(([status]) => status).sort(),
  );
  for (const { state } of Object.values(QEMU_RUN_STATES)) {
    deepStrictEqual(VM_STATES.includes(state), true, state);
  }
});

Deno.test("parseQueryStatus() reads status and refuses what is not a status word", () => {
  deepStrictEqual(parseQueryStatus({ status: "running", running: true, singlestep: false }), {
    state: "running",
    reason: "unknown",
  });
  const bad: unknown[] = [
    null,
    [],
    "running",
    {},
    { status: 1 },
    { status: "" },
    { status: "x".repeat(65) },
    { status: "a b" },
    { status: "a\nb" },
    { status: "é" },
  ];
  for (const reply of bad) {
    throws(() => parseQueryStatus(reply), TypeError, JSON.stringify(reply));
  }
});
