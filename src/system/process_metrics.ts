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
import { parseProcPidStat, PROC_PID_STAT_MAX_BYTES, USER_HZ } from "./proc_pid.ts";

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

const PAGE_SIZE = 4096;

/** This process's CPU ticks, virtual bytes and resident pages, when its stat line has all three. */
function ownStat(
  text: string,
): { cpuTicks: number; virtualBytes: number; residentPages: number } | undefined {
  let stat;
  try {
    stat = parseProcPidStat(text);
  } catch {
    return undefined;
  }
  const { utimeTicks, stimeTicks, virtualBytes, residentPages } = stat;
  if (
    utimeTicks === undefined || stimeTicks === undefined || virtualBytes === undefined ||
    residentPages === undefined
  ) return undefined;
  return {
    cpuTicks: Number(utimeTicks + stimeTicks),
    virtualBytes: Number(virtualBytes),
    residentPages: Number(residentPages),
  };
}

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
    readBoundedText(`${self}/stat`, PROC_PID_STAT_MAX_BYTES),
    readBoundedText(`${self}/limits`, PROC_FILE_MAX_BYTES),
    countEntries(`${self}/fd`),
  ]);
  const parsed = stat.status === "fulfilled" ? ownStat(stat.value) : undefined;
  const usage = process.cpuUsage();
  out.add(
    {
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds.",
      type: "counter",
    },
    [],
    parsed !== undefined ? parsed.cpuTicks / USER_HZ : (usage.user + usage.system) / 1e6,
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
