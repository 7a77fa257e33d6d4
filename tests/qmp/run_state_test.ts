import { deepStrictEqual, throws } from "node:assert/strict";
import { parseQueryStatus, QEMU_RUN_STATES, runStateOf } from "../../src/qmp/run_state.ts";
import { VM_STATES, type VmState } from "../../src/metrics/vm_families.ts";

/** Every QEMU RunState of qapi/run-state.json and what libvirt calls it. */
const CASES: [status: string, state: VmState][] = [
  ["running", "running"],
  ["paused", "paused"],
  ["inmigrate", "paused"],
  ["postmigrate", "paused"],
  ["prelaunch", "paused"],
  ["finish-migrate", "paused"],
  ["restore-vm", "paused"],
  ["suspended", "pmsuspended"],
  ["watchdog", "paused"],
  ["guest-panicked", "crashed"],
  ["io-error", "paused"],
  ["shutdown", "shutdown"],
  ["save-vm", "paused"],
  ["internal-error", "paused"],
  ["debug", "paused"],
  ["colo", "paused"],
  // A status of a newer QEMU, and names that only look like table keys.
  ["some-new-state", "nostate"],
  ["toString", "nostate"],
  ["__proto__", "nostate"],
];

Deno.test("runStateOf() maps each QEMU status onto libvirt's state, the status as reason", () => {
  for (const [status, state] of CASES) {
    deepStrictEqual(runStateOf(status), { state, reason: status }, status);
  }
});

Deno.test("QEMU_RUN_STATES covers every QEMU RunState and maps only onto VM_STATES", () => {
  deepStrictEqual(
    Object.keys(QEMU_RUN_STATES).sort(),
    CASES.filter(([, s]) => s !== "nostate").map(([status]) => status).sort(),
  );
  for (const state of Object.values(QEMU_RUN_STATES)) {
    deepStrictEqual(VM_STATES.includes(state), true, state);
  }
});

Deno.test("parseQueryStatus() reads status and refuses what is not a status word", () => {
  deepStrictEqual(parseQueryStatus({ status: "running", running: true, singlestep: false }), {
    state: "running",
    reason: "running",
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
