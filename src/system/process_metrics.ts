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
import { classifyReadError } from "./file_system.ts";
import { parseMaxFds, parseProcPidStat, PROC_PID_STAT_MAX_BYTES, USER_HZ } from "./proc_pid.ts";

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

/**
 * Whether a failed read of the exporter's own `<procfs>/self` will fail the same way on every
 * scrape: procfs has no `self` (not a procfs), or Deno may not read it. Neither changes while the
 * process lives; anything else (fds run out) is tried again on the next scrape.
 */
function failsForGood(error: unknown): boolean {
  const reason = classifyReadError(error);
  return reason === "vanished" || reason === "permission" || reason === "not_regular";
}

const decoder = new TextDecoder();

/**
 * The exporter's own `process_*` metrics, reading `<procfs>/self` no more than
 * needed: `stat` is opened once and read again from its start on every scrape
 * (procfs makes the text anew at offset 0; one `lseek` and one `read`, where
 * an open would cost a permission check of every path component), `limits`
 * is read once (the exporter never changes its own limit; main.ts sizes its
 * connection cap from the same start-time value), and `fd` is listed every
 * scrape. A file that cannot be read for good ({@linkcode failsForGood}) is
 * not tried again; CPU and RSS then come from the runtime.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { FamilySet } from "../metrics/model.ts";
 * import { ProcessMetrics } from "./process_metrics.ts";
 * using metrics = new ProcessMetrics("/nonexistent");
 * const out = new FamilySet();
 * await metrics.collect(out);
 * assert(out.families().some((f) => f.name === "process_cpu_seconds_total"));
 * ```
 */
export class ProcessMetrics {
  readonly #self: string;
  /** `self/stat`, open; undefined until opened, null when it cannot be read for good. */
  #stat: Deno.FsFile | undefined | null;
  #opening: Promise<void> | undefined;
  /** The soft fd limit: undefined until read, null when unknown for good. */
  #maxFds: number | undefined | null;
  #listFds = true;
  readonly #buffer = new Uint8Array(PROC_PID_STAT_MAX_BYTES + 1);

  /**
   * Reads nothing yet: the first {@linkcode collect} opens the files.
   *
   * @param procfs The procfs mount point.
   */
  constructor(procfs: string) {
    this.#self = `${procfs}/self`;
  }

  /**
   * Adds the process metrics; those that cannot be read are left out.
   *
   * @param out Where to add them.
   */
  async collect(out: FamilySet): Promise<void> {
    if (this.#stat === undefined || this.#maxFds === undefined) {
      this.#opening ??= this.#open().finally(() => this.#opening = undefined);
      await this.#opening;
    }
    const parsed = this.#readStat();
    let cpuSeconds;
    if (parsed !== undefined) cpuSeconds = parsed.cpuTicks / USER_HZ;
    else {
      const usage = process.cpuUsage();
      cpuSeconds = (usage.user + usage.system) / 1e6;
    }
    out.add(
      {
        name: "process_cpu_seconds_total",
        help: "Total user and system CPU time spent in seconds.",
        type: "counter",
      },
      [],
      cpuSeconds,
    );
    addGauge(
      out,
      ["process_resident_memory_bytes", "Resident memory size in bytes."],
      parsed !== undefined ? parsed.residentPages * PAGE_SIZE : Deno.memoryUsage().rss,
    );
    addGauge(
      out,
      ["process_start_time_seconds", "Start time of the process since unix epoch in seconds."],
      Math.floor(performance.timeOrigin / 1000),
    );
    if (parsed !== undefined) {
      addGauge(
        out,
        ["process_virtual_memory_bytes", "Virtual memory size in bytes."],
        parsed.virtualBytes,
      );
    }
    if (typeof this.#maxFds === "number") {
      addGauge(
        out,
        ["process_max_fds", "Maximum number of open file descriptors."],
        this.#maxFds,
      );
    }
    const fds = this.#countFds();
    if (fds !== undefined) {
      addGauge(out, ["process_open_fds", "Number of open file descriptors."], fds);
    }
  }

  /** Closes `self/stat`; a later {@linkcode collect} opens it again. */
  close(): void {
    this.#stat?.close();
    this.#stat = undefined;
  }

  /** Closes `self/stat`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Opens `stat` and reads `limits`, each unless known or failed for good. */
  async #open(): Promise<void> {
    if (this.#stat === undefined) {
      try {
        // Opened the async way once: a procfs that is not one could hold a FIFO there.
        const file = await Deno.open(`${this.#self}/stat`, { read: true });
        if ((await file.stat()).isFile) this.#stat = file;
        else {
          file.close();
          this.#stat = null;
        }
      } catch (error) {
        if (failsForGood(error)) this.#stat = null;
      }
    }
    if (this.#maxFds === undefined) {
      try {
        const text = await readBoundedText(`${this.#self}/limits`, PROC_FILE_MAX_BYTES);
        this.#maxFds = parseMaxFds(text) ?? null;
      } catch (error) {
        if (failsForGood(error)) this.#maxFds = null;
      }
    }
  }

  /** `stat` read again from its start: the text procfs makes at offset 0 is today's. */
  #readStat(): ReturnType<typeof ownStat> {
    const file = this.#stat;
    if (file === undefined || file === null) return undefined;
    let used = 0;
    try {
      file.seekSync(0, Deno.SeekMode.Start);
      for (;;) {
        const n = file.readSync(this.#buffer.subarray(used));
        if (n === null || n === 0) break;
        used += n;
        if (used === this.#buffer.length) return undefined; // Past the cap: not a stat line.
      }
    } catch {
      // Never seen on procfs: open it again on the next scrape.
      this.close();
      return undefined;
    }
    return ownStat(decoder.decode(this.#buffer.subarray(0, used)));
  }

  /** Open fds: `self/fd` listed (synchronously: a procfs dir is made from memory). */
  #countFds(): number | undefined {
    if (!this.#listFds) return undefined;
    try {
      let n = 0;
      for (const _ of Deno.readDirSync(`${this.#self}/fd`)) n++;
      return n;
    } catch (error) {
      if (failsForGood(error)) this.#listFds = false;
      return undefined;
    }
  }
}

function addGauge(out: FamilySet, [name, help]: [string, string], value: number): void {
  out.add({ name, help, type: "gauge" }, [], value);
}
