/**
 * A thread's scheduler statistics from `<procfs>/PID/task/TID/schedstat`:
 * time on CPU, time runnable but waiting for a CPU (run delay), and the
 * number of timeslices. Kept by the kernel whatever `kernel.sched_schedstats`
 * says (that sysctl only adds `/proc/PID/task/TID/sched`'s wait sums).
 *
 * libvirt reports a vCPU's `vcpu.N.delay` from this same file (equal values),
 * and its `vcpu.N.time` from the thread's `stat` utime + stime, which the
 * kernel derives from the same runtime but rounds down to clock ticks (10 ms
 * at USER_HZ 100).
 *
 * @module
 */

/** A thread's `schedstat`. */
export interface Schedstat {
  /** Time on CPU, in ns (`sum_exec_runtime`). */
  cpuNs: bigint;
  /** Time runnable but not running, in ns (`run_delay`). */
  delayNs: bigint;
  /** Timeslices run (`pcount`). */
  timeslices: bigint;
}

/** Longest `schedstat` accepted: three u64s and separators fit in 64 bytes. */
export const MAX_SCHEDSTAT_BYTES = 128;

/**
 * Parses a `schedstat` file: three unsigned decimal integers separated by
 * spaces, a trailing newline.
 *
 * @example Usage
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseSchedstat } from "./schedstat.ts";
 *
 * strictEqual(parseSchedstat("2599728635 1905341181 1472\n").delayNs, 1905341181n);
 * ```
 *
 * @param text The file content.
 * @returns The three counters.
 * @throws {SyntaxError} If the text is not three unsigned integers.
 */
export function parseSchedstat(text: string): Schedstat {
  const match = /^(\d{1,20}) (\d{1,20}) (\d{1,20})\n?$/.exec(text);
  if (match === null) {
    throw new SyntaxError(
      `Invalid schedstat: expected three unsigned integers, got "${text.slice(0, 80).trim()}"`,
    );
  }
  const [cpuNs, delayNs, timeslices] = match.slice(1).map((digits) => BigInt(digits)) as [
    bigint,
    bigint,
    bigint,
  ];
  if (cpuNs >= 2n ** 64n || delayNs >= 2n ** 64n || timeslices >= 2n ** 64n) {
    throw new SyntaxError(`Invalid schedstat: a value exceeds 64 bits in "${text.trim()}"`);
  }
  return { cpuNs, delayNs, timeslices };
}
