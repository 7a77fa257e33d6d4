/**
 * The standard `process_*` metrics every Prometheus exporter has. Read from
 * `<procfs>/self`; Deno refuses `/proc` itself without `--allow-all`, so
 * where procfs is not readable CPU and RSS come from the runtime and the
 * rest is left out.
 *
 * @module
 */

import process from "node:process";
import type { FamilySet } from "../metrics/model.ts";
import { PROC_FILE_MAX_BYTES, readBoundedText } from "./bounded_read.ts";

/** Fields of `/proc/PID/stat` the process metrics use. */
export interface ProcStat {
  /** User plus system CPU time in clock ticks. */
  cpuTicks: number;
  /** Virtual memory size in bytes. */
  virtualBytes: number;
  /** Resident set size in pages. */
  residentPages: number;
}

/**
 * Parses `/proc/PID/stat`. The command name may hold spaces and parentheses,
 * so fields are counted from the last `)`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProcStat } from "./process_metrics.ts";
 * const line = "1 (a b) S 0 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 1 0 100 4096 10 0";
 * assert(parseProcStat(line)?.cpuTicks === 300);
 * ```
 *
 * @param text The file content.
 * @returns The fields, or undefined when the text is not a stat line.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(")");
  if (close === -1) return undefined;
  // After ")" comes field 3 (state), so field N is at index N - 3.
  const fields = text.slice(close + 2).trim().split(" ");
  const at = (n: number): number => Number(fields[n - 3]);
  const stat = { cpuTicks: at(14) + at(15), virtualBytes: at(23), residentPages: at(24) };
  return Object.values(stat).every(Number.isFinite) ? stat : undefined;
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

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture Deno runs on.
const PAGE_SIZE = 4096;

async function countEntries(path: string): Promise<number> {
  let n = 0;
  for await (const _ of Deno.readDir(path)) n++;
  return n;
}

/**
 * Adds the process metrics; those that cannot be read are left out.
 *
 * @param out Where to add them.
 * @param procfs The procfs mount point.
 */
export async function collectProcessMetrics(out: FamilySet, procfs: string): Promise<void> {
  const gauge = (name: string, help: string, value: number): void => {
    out.add({ name, help, type: "gauge" }, [], value);
  };
  const self = `${procfs}/self`;
  const [stat, limits, fds] = await Promise.allSettled([
    readBoundedText(`${self}/stat`, PROC_FILE_MAX_BYTES),
    readBoundedText(`${self}/limits`, PROC_FILE_MAX_BYTES),
    countEntries(`${self}/fd`),
  ]);
  const parsed = stat.status === "fulfilled" ? parseProcStat(stat.value) : undefined;
  const usage = process.cpuUsage();
  out.add(
    {
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds.",
      type: "counter",
    },
    [],
    parsed !== undefined
      ? parsed.cpuTicks / CLOCK_TICKS_PER_SECOND
      : (usage.user + usage.system) / 1e6,
  );
  gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
    parsed !== undefined ? parsed.residentPages * PAGE_SIZE : Deno.memoryUsage().rss,
  );
  gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    Math.floor(performance.timeOrigin / 1000),
  );
  if (parsed !== undefined) {
    gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", parsed.virtualBytes);
  }
  const maxFds = limits.status === "fulfilled" ? parseMaxFds(limits.value) : undefined;
  if (maxFds !== undefined) {
    gauge("process_max_fds", "Maximum number of open file descriptors.", maxFds);
  }
  if (fds.status === "fulfilled") {
    gauge("process_open_fds", "Number of open file descriptors.", fds.value);
  }
}
