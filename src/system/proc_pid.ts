/**
 * Pure parsers of a process's procfs files (`<procfs>/PID/stat`, `status`, `io`) and of the
 * boot time in `<procfs>/stat`: the exporter's own `process_*` metrics and the `vm_process`
 * collector read the same files through these.
 *
 * Every number is an unsigned decimal below 2^64, as the kernel prints them; a field that is
 * not one (garbage, a sign, more than 64 bits) is undefined, so that it costs only its own
 * value. Only a text that is not the file at all (a stat line without its `(comm)`) throws.
 *
 * @module
 */

/**
 * Clock ticks per second of `stat`'s times (utime, stime, starttime): USER_HZ, which the kernel
 * exports to user space as a fixed 100 on every architecture (`sysconf(_SC_CLK_TCK)`), whatever
 * its internal HZ. It is ABI, so it is a constant, not a lookup.
 */
export const USER_HZ = 100;

/** Longest `<procfs>/PID/stat` read: 52 fields of at most 20 digits and a 16-byte name fit in 1.2 KiB. */
export const PROC_PID_STAT_MAX_BYTES = 4 * 1024;

/** Longest `<procfs>/PID/io` read: seven counters, about 200 bytes. */
export const PROC_PID_IO_MAX_BYTES = 4 * 1024;

/**
 * Longest `<procfs>/stat` read. It has a line per CPU and an `intr` line with a count per IRQ
 * number before its `btime` line: tens of KiB on a host with hundreds of CPUs and thousands of
 * IRQs, so more than the 64 KiB of other procfs files. It is read once per exporter.
 */
export const PROC_STAT_MAX_BYTES = 1024 * 1024;

/** The most tasks a Linux kernel can have (`PID_MAX_LIMIT`, 2^22): a larger thread count is absurd. */
export const MAX_THREADS = 4_194_304n;

const U64_LIMIT = 2n ** 64n;

/**
 * An unsigned decimal below 2^64, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseU64 } from "./proc_pid.ts";
 * assert.equal(parseU64("18446744073709551615"), 18446744073709551615n);
 * assert.equal(parseU64("18446744073709551616"), undefined);
 * assert.equal(parseU64("-1"), undefined);
 * ```
 *
 * @param text The digits.
 * @returns The value.
 */
export function parseU64(text: string | undefined): bigint | undefined {
  if (text === undefined || !/^\d{1,20}$/.test(text)) return undefined;
  const value = BigInt(text);
  return value < U64_LIMIT ? value : undefined;
}

/** The fields of `<procfs>/PID/stat` the exporter uses; each undefined when not a u64. */
export interface ProcPidStat {
  /** Field 2, the command name, without its parentheses. */
  comm: string;
  /** Field 3, the state: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ... */
  state: string;
  /** Field 14, CPU time in user mode, in {@linkcode USER_HZ} ticks. */
  utimeTicks: bigint | undefined;
  /** Field 15, CPU time in kernel mode, in {@linkcode USER_HZ} ticks. */
  stimeTicks: bigint | undefined;
  /** Field 22, when the process started, in {@linkcode USER_HZ} ticks since boot. */
  startTicks: bigint | undefined;
  /** Field 23, virtual memory size in bytes. */
  virtualBytes: bigint | undefined;
  /** Field 24, resident set size in pages. */
  residentPages: bigint | undefined;
}

/**
 * Parses `<procfs>/PID/stat`. The command name may hold spaces and parentheses, so fields are
 * counted from the last `)`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProcPidStat } from "./proc_pid.ts";
 * const line = "1 (a b) S 0 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 1 0 100 4096 10 0\n";
 * const stat = parseProcPidStat(line);
 * assert.equal(stat.comm, "a b");
 * assert.equal(stat.utimeTicks, 250n);
 * ```
 *
 * @param text The file content.
 * @returns The fields; each number undefined when it is not an unsigned 64-bit decimal.
 * @throws {SyntaxError} When the text is not a stat line: no `(comm)`, or no state after it.
 */
export function parseProcPidStat(text: string): ProcPidStat {
  const open = text.indexOf(" (");
  const close = text.lastIndexOf(")");
  if (open === -1 || close < open) {
    throw new SyntaxError(`Invalid stat line: no "(comm)" in "${text.slice(0, 80).trim()}"`);
  }
  // After ")" comes field 3 (state), so field N is at index N - 3.
  const fields = text.slice(close + 1).trim().split(/ +/);
  const state = fields[0] ?? "";
  if (!/^[A-Za-z]$/.test(state)) {
    throw new SyntaxError(`Invalid stat line: no state after "(comm)" in "${text.slice(0, 80)}"`);
  }
  const at = (n: number): bigint | undefined => parseU64(fields[n - 3]);
  return {
    comm: text.slice(open + 2, close),
    state,
    utimeTicks: at(14),
    stimeTicks: at(15),
    startTicks: at(22),
    virtualBytes: at(23),
    residentPages: at(24),
  };
}

/** The fields of `<procfs>/PID/status` the exporter uses; each undefined when missing or absurd. */
export interface ProcPidStatus {
  /** `VmRSS`, in bytes (the file says kB, which are KiB). Kernel threads and zombies have none. */
  residentBytes: bigint | undefined;
  /** `Threads`: at least 1, at most {@linkcode MAX_THREADS}. */
  threads: bigint | undefined;
}

/** The value of a `Name:\tvalue` line of a `status` file, or undefined. */
function statusField(text: string, name: string): string | undefined {
  const match = new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(text);
  return match?.[1]?.trim();
}

/**
 * Parses `<procfs>/PID/status`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProcPidStatus } from "./proc_pid.ts";
 * const status = parseProcPidStatus("Name:\tqemu\nVmRSS:\t  2048 kB\nThreads:\t7\n");
 * assert.deepEqual(status, { residentBytes: 2097152n, threads: 7n });
 * ```
 *
 * @param text The file content.
 * @returns The fields; each undefined when missing, not in the unit expected, or absurd.
 */
export function parseProcPidStatus(text: string): ProcPidStatus {
  const rss = /^(\d{1,20}) kB$/.exec(statusField(text, "VmRSS") ?? "");
  const kib = parseU64(rss?.[1]);
  const residentBytes = kib === undefined || kib * 1024n >= U64_LIMIT ? undefined : kib * 1024n;
  const threads = parseU64(statusField(text, "Threads"));
  return {
    residentBytes,
    threads: threads !== undefined && threads >= 1n && threads <= MAX_THREADS ? threads : undefined,
  };
}

/** The fields of `<procfs>/PID/io` the exporter uses; each undefined when missing or not a u64. */
export interface ProcPidIo {
  /** `read_bytes`: bytes the process caused to be fetched from storage. */
  readBytes: bigint | undefined;
  /** `write_bytes`: bytes the process caused to be sent to storage. */
  writeBytes: bigint | undefined;
}

/**
 * Parses `<procfs>/PID/io`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProcPidIo } from "./proc_pid.ts";
 * assert.deepEqual(parseProcPidIo("rchar: 9\nread_bytes: 4096\nwrite_bytes: 0\n"), {
 *   readBytes: 4096n,
 *   writeBytes: 0n,
 * });
 * ```
 *
 * @param text The file content.
 * @returns The fields.
 */
export function parseProcPidIo(text: string): ProcPidIo {
  return {
    readBytes: parseU64(statusField(text, "read_bytes")),
    writeBytes: parseU64(statusField(text, "write_bytes")),
  };
}

/**
 * The boot time from `<procfs>/stat`'s `btime` line, in seconds since the epoch.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBootTime } from "./proc_pid.ts";
 * assert.equal(parseBootTime("cpu  1 2 3\nbtime 1764720000\nprocesses 9\n"), 1764720000n);
 * ```
 *
 * @param text The file content.
 * @returns The boot time; undefined when there is no `btime` line or it is not a positive u64.
 */
export function parseBootTime(text: string): bigint | undefined {
  const match = /^btime (\S+)$/m.exec(text);
  const value = parseU64(match?.[1]);
  return value !== undefined && value > 0n ? value : undefined;
}

/**
 * Parses the soft "Max open files" limit from `/proc/PID/limits`.
 *
 * @param text The file content.
 * @returns The limit, or undefined (also for "unlimited").
 */
export function parseMaxFds(text: string): number | undefined {
  const match = /^Max open files\s+(\d+)/m.exec(text);
  return match === null ? undefined : Number(match[1]);
}
