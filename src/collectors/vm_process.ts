/**
 * The `vm_process` collector: each VM's VMM process as procfs shows it, for
 * every VM discovery found, whatever its VMM (QEMU, Firecracker, Cloud
 * Hypervisor, ...), with no configuration and under kernel lockdown (procfs
 * only, no debugfs). From `<procfs>/PID/stat`: CPU time by mode and the start
 * time (with `<procfs>/stat`'s `btime`); from `<procfs>/PID/status`: resident
 * memory and threads; from `<procfs>/PID/io`, where the kernel lets it be
 * read: bytes read from and written to storage.
 *
 * Its CPU and resident memory families are shared with the libvirt
 * collector (metrics/vm_families.ts), which comes first in the registry: its
 * values win where it has them.
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { Logger } from "../log/logger.ts";
import type { Decimal, FamilySet, Labels } from "../metrics/model.ts";
import { VM_FAMILIES } from "../metrics/vm_families.ts";
import { PROC_FILE_MAX_BYTES } from "../system/bounded_read.ts";
import type { FileSystem, ReadErrorReason } from "../system/file_system.ts";
import { type KeptFileBudget, keptFileBudget } from "../system/kept_file.ts";
import { KeptFiles } from "../system/kept_files.ts";
import { Limiter } from "../system/limiter.ts";
import {
  parseBootTime,
  parseProcPidIo,
  parseProcPidStat,
  parseProcPidStatus,
  PROC_PID_IO_MAX_BYTES,
  PROC_PID_STAT_MAX_BYTES,
  PROC_STAT_MAX_BYTES,
  type ProcPidStat,
  USER_HZ,
} from "../system/proc_pid.ts";
import type { Collector, CollectorOutput, ScrapeContext } from "./collector.ts";
import { declareCollector } from "./collector_declaration.ts";
import { guardedRead } from "./guarded_read.ts";
import { READ_ERROR_REASONS } from "./read_errors.ts";
import { LIBVIRT } from "./libvirt.ts";

/** The name of this collector. */
export const VM_PROCESS = "vm_process";

/** Why a reading was skipped: a read error's reason, or a pid that is another process now. */
export type VmProcessErrorReason = ReadErrorReason | "reused";

/** The reasons of `kvm_exporter_vm_process_errors`: the read errors', with `reused` before `other`. */
export const VM_PROCESS_ERROR_REASONS: readonly VmProcessErrorReason[] = [
  ...READ_ERROR_REASONS.filter((reason) => reason !== "other"),
  "reused",
  "other",
];

const ERRORS = {
  name: "kvm_exporter_vm_process_errors",
  help: "Readings of VMM processes skipped in the last scrape (a file of <procfs>/PID, a field " +
    "of one, or <procfs>/stat's btime), by reason; reused: the pid is another process now.",
  type: "gauge",
} as const;

/** `USER_HZ` as the exponent of a decimal: ticks are hundredths of a second. */
const TICK_EXPONENT = -Math.log10(USER_HZ);

/** Options of {@linkcode createVmProcessCollector}. */
export interface VmProcessOptions {
  /** procfs mount point. */
  procfs: string;
  /** File access. */
  fs: FileSystem;
  /** Logger. */
  logger: Logger;
  /** Files read at once. Default 32. */
  concurrency?: number;
}

/** The collector's options and what it keeps across scrapes. */
interface VmProcessState {
  readonly options: VmProcessOptions;
  readonly limiter: Limiter;
  /**
   * Each VM's process start, in ticks since boot, as first read, by VM dir: a pid whose start
   * differs later is another process (the VMM exited, something else holds the VM's fd, and
   * the pid was reused), and is not reported as the VM's.
   */
  readonly startByDir: Map<string, bigint>;
  /**
   * VM dirs whose `io` the kernel refused: not opened again while that VMM runs (the refusal
   * depends on the VMM's credentials, which do not change), but still counted each scrape.
   */
  readonly ioRefused: Set<string>;
  /** The boot time once read: a constant, so a start time never moves with a clock step. */
  bootTime: bigint | undefined;
  /** Each VMM's `stat`, `status` and `io`, kept open once read (within the budget). */
  readonly kept: KeptFiles;
  /** Counts the kept files against the open file limit; set on the first scrape. */
  budget: KeptFileBudget | undefined;
  /** Reasons logged at warn, until a scrape has none of that reason. */
  readonly warned: Set<VmProcessErrorReason>;
  /**
   * VM dirs libvirt has identified, for the VM's life: libvirt supplies their CPU time and
   * resident memory (its cgroup's CPU counts the VM's vhost workers too), and this collector
   * leaves those families to it for good, so that a scrape libvirt misses never swaps one
   * counter for another (which Prometheus would read as a reset).
   */
  readonly libvirtVms: Set<string>;
}

/** Where a reading was skipped, for the count and the log. */
interface Skip {
  domain: string | undefined;
  path: string;
  reason: VmProcessErrorReason;
  detail: string;
  /** Counted but logged at debug only: `io` the kernel refuses (it is often unreadable). */
  quiet?: boolean;
}

/** Seconds as an exact decimal of {@linkcode USER_HZ} ticks. */
function ticksAsSeconds(ticks: bigint): Decimal {
  return { units: ticks, exponent: TICK_EXPONENT };
}

/** One scrape of the VMM processes. */
class VmProcessScrape {
  readonly #state: VmProcessState;
  readonly #context: ScrapeContext;
  readonly #out: CollectorOutput;
  /** The readings skipped in this scrape. */
  readonly skipped: Skip[] = [];
  /** The VMM files this scrape read. */
  readonly #read = new Set<string>();
  /** The first reason a VM's reading was skipped in this scrape, by domain (quiet ones aside). */
  readonly #firstSkip = new Map<string, VmProcessErrorReason>();

  constructor(state: VmProcessState, scrape: { context: ScrapeContext; out: CollectorOutput }) {
    this.#state = state;
    this.#context = scrape.context;
    this.#out = scrape.out;
  }

  /**
   * Reads a file through the read guard (a read that blocks, a process in D state holding its
   * memory lock, is waited for only until the deadline, and not started again until it returns),
   * or records why it could not be read. A VMM's file (`dir` given) is kept open once read and
   * read again from its start: a read of an open file costs a syscall, where the guarded read
   * costs Deno's path checks, an `fstat` and two more. A kept file of a VMM that exited fails to
   * read (ESRCH), even if its pid is reused: it is closed, and the guarded read says why.
   */
  async #readOrSkip(
    path: string,
    where: { domain: string | undefined; dir?: string; maxBytes: number; quietRefusal?: boolean },
  ): Promise<string | undefined> {
    const { fs } = this.#state.options;
    const { limiter, kept, budget } = this.#state;
    const { dir } = where;
    if (dir !== undefined) {
      this.#read.add(path);
      const text = kept.read(dir, path, where.maxBytes);
      if (text !== undefined) return text;
    }
    const read = await guardedRead(this.#context, { path, maxBytes: where.maxBytes, fs, limiter });
    if (read.ok) {
      const late = this.#context.signal.aborted;
      if (dir !== undefined && budget !== undefined && !late) kept.keep(dir, path, budget);
      return read.text;
    }
    this.#record({
      domain: where.domain,
      path,
      reason: read.reason,
      detail: read.detail,
      quiet: (where.quietRefusal ?? false) && read.reason === "permission",
    });
    return undefined;
  }

  #record(skip: Skip): void {
    this.skipped.push(skip);
    if (skip.domain !== undefined && !skip.quiet && !this.#firstSkip.has(skip.domain)) {
      this.#firstSkip.set(skip.domain, skip.reason);
    }
  }

  #skip(vm: DiscoveredVm, path: string, detail: string): void {
    this.#record({ domain: vm.domain, path, reason: "malformed", detail });
  }

  /** The boot time, read once per exporter and kept. */
  async bootTime(): Promise<bigint | undefined> {
    const state = this.#state;
    if (state.bootTime !== undefined) return state.bootTime;
    const path = `${state.options.procfs}/stat`;
    const text = await this.#readOrSkip(path, { domain: undefined, maxBytes: PROC_STAT_MAX_BYTES });
    if (text === undefined) return undefined;
    state.bootTime = parseBootTime(text);
    if (state.bootTime === undefined) {
      this.#record({ domain: undefined, path, reason: "malformed", detail: "No btime line" });
    }
    return state.bootTime;
  }

  /**
   * The VMM's stat, when it is still the VM's process: a zombie has exited (its VM is going), and
   * a process that started at another time than first seen is another process with the same
   * pid. Either costs the VM, as does a stat without a start time (nothing read of that pid
   * could be told to be the VMM's).
   */
  async #stat(vm: DiscoveredVm): Promise<ProcPidStat & { startTicks: bigint } | undefined> {
    const path = `${this.#base(vm)}/stat`;
    const text = await this.#readOrSkip(path, {
      domain: vm.domain,
      dir: vm.dir,
      maxBytes: PROC_PID_STAT_MAX_BYTES,
    });
    if (text === undefined) return undefined;
    let stat: ProcPidStat;
    try {
      stat = parseProcPidStat(text);
    } catch (error) {
      this.#skip(vm, path, (error as Error).message);
      return undefined;
    }
    if (stat.startTicks === undefined) {
      this.#skip(vm, path, "No start time (field 22)");
      return undefined;
    }
    if (stat.state === "Z" || stat.state === "X") {
      this.#record({ domain: vm.domain, path, reason: "vanished", detail: "A zombie" });
      return undefined;
    }
    const first = this.#state.startByDir.get(vm.dir);
    if (first === undefined) this.#state.startByDir.set(vm.dir, stat.startTicks);
    else if (first !== stat.startTicks) {
      this.#record({
        domain: vm.domain,
        path,
        reason: "reused",
        detail:
          `The pid is another process: it started at tick ${stat.startTicks}, the VMM at ${first}`,
      });
      return undefined;
    }
    return { ...stat, startTicks: stat.startTicks };
  }

  /** Adds a VM's CPU times and start time; a field that is not a number costs its own values. */
  #addStat(
    vm: DiscoveredVm,
    read: {
      stat: ProcPidStat & { startTicks: bigint };
      bootTime: bigint | undefined;
      cpu: boolean;
    },
  ): void {
    const { stat, bootTime } = read;
    const out = this.#out.families;
    const labels: Labels = [["domain", vm.domain]];
    if (read.cpu) this.#addCpu(vm, stat);
    if (bootTime === undefined) return;
    const start = bootTime * BigInt(USER_HZ) + stat.startTicks;
    out.add(VM_FAMILIES.processStart, labels, ticksAsSeconds(start));
  }

  /** Adds a VM's CPU times; a field that is not a number costs its own values. */
  #addCpu(vm: DiscoveredVm, stat: ProcPidStat): void {
    const out = this.#out.families;
    const labels: Labels = [["domain", vm.domain]];
    const { utimeTicks, stimeTicks } = stat;
    if (utimeTicks !== undefined) {
      out.add(VM_FAMILIES.cpu, [...labels, ["mode", "user"]], ticksAsSeconds(utimeTicks));
    }
    if (stimeTicks !== undefined) {
      out.add(VM_FAMILIES.cpu, [...labels, ["mode", "system"]], ticksAsSeconds(stimeTicks));
    }
    if (utimeTicks === undefined || stimeTicks === undefined) {
      this.#skip(vm, `${this.#base(vm)}/stat`, "utime or stime (fields 14, 15) is not a number");
    } else {
      out.add(VM_FAMILIES.cpuTotal, labels, ticksAsSeconds(utimeTicks + stimeTicks));
    }
  }

  #base(vm: DiscoveredVm): string {
    return `${this.#state.options.procfs}/${vm.pid}`;
  }

  /** Adds threads, and resident memory unless libvirt supplies it, from `status`. */
  async #addStatus(vm: DiscoveredVm, add: { labels: Labels; resident: boolean }): Promise<void> {
    const { labels } = add;
    const path = `${this.#base(vm)}/status`;
    const text = await this.#readOrSkip(path, {
      domain: vm.domain,
      dir: vm.dir,
      maxBytes: PROC_FILE_MAX_BYTES,
    });
    if (text === undefined) return;
    const status = parseProcPidStatus(text);
    if (add.resident) {
      if (status.residentBytes === undefined) this.#skip(vm, path, "No VmRSS in kB");
      else this.#out.families.add(VM_FAMILIES.resident, labels, status.residentBytes);
    }
    if (status.threads === undefined) this.#skip(vm, path, "No plausible Threads");
    else this.#out.families.add(VM_FAMILIES.processThreads, labels, status.threads);
  }

  /**
   * Adds the storage bytes from `io`. The kernel often refuses it (it wants ptrace access to the
   * VMM): that is counted quietly, and the file is not opened again for that VMM.
   */
  async #addIo(vm: DiscoveredVm, labels: Labels): Promise<void> {
    const path = `${this.#base(vm)}/io`;
    const { ioRefused } = this.#state;
    if (ioRefused.has(vm.dir)) {
      const detail = "Refused before: not opened again while this VMM runs";
      this.#record({ domain: vm.domain, path, reason: "permission", detail, quiet: true });
      return;
    }
    const text = await this.#readOrSkip(path, {
      domain: vm.domain,
      dir: vm.dir,
      maxBytes: PROC_PID_IO_MAX_BYTES,
      quietRefusal: true,
    });
    if (text === undefined) {
      const refused = this.skipped.findLast((skip) => skip.path === path);
      if (refused?.reason === "permission") ioRefused.add(vm.dir);
      return;
    }
    const io = parseProcPidIo(text);
    if (io.readBytes === undefined) this.#skip(vm, path, "No read_bytes");
    else this.#out.families.add(VM_FAMILIES.processReadBytes, labels, io.readBytes);
    if (io.writeBytes === undefined) this.#skip(vm, path, "No write_bytes");
    else this.#out.families.add(VM_FAMILIES.processWriteBytes, labels, io.writeBytes);
  }

  /** Reads one VM's process; whatever goes wrong costs that VM or that value only. */
  async readVm(vm: DiscoveredVm, bootTime: Promise<bigint | undefined>): Promise<void> {
    const stat = await this.#stat(vm);
    if (stat !== undefined) {
      const labels: Labels = [["domain", vm.domain]];
      const libvirts = this.#state.libvirtVms.has(vm.dir);
      this.#addStat(vm, { stat, bootTime: await bootTime, cpu: !libvirts });
      await Promise.all([
        this.#addStatus(vm, { labels, resident: !libvirts }),
        this.#addIo(vm, labels),
      ]);
    }
    // Files not read (a VM whose stat failed, io refused since): their places go back.
    if (!this.#context.signal.aborted) this.#state.kept.forgetUnread(vm.dir, this.#read);
    this.#out.observations.observe(vm.dir, { outcome: this.#firstSkip.get(vm.domain) ?? "ok" });
  }
}

/** Counts the skipped readings by reason, and logs each reason once while it lasts. */
function reportSkipped(state: VmProcessState, scrape: { skipped: Skip[]; out: FamilySet }): void {
  const { skipped, out } = scrape;
  out.addByReason(ERRORS, {
    reasons: VM_PROCESS_ERROR_REASONS,
    count: (reason) => skipped.filter((s) => s.reason === reason).length,
  });
  const { logger } = state.options;
  const present = new Set(skipped.filter((s) => !s.quiet).map((s) => s.reason));
  for (const reason of state.warned) if (!present.has(reason)) state.warned.delete(reason);
  for (const skip of skipped) {
    const fields = {
      collector: VM_PROCESS,
      path: skip.path,
      reason: skip.reason,
      err: skip.detail,
    };
    const msg = "Cannot read a VMM process's value; skipping it";
    // A VM that exits mid-scrape is normal on a hypervisor; io is refused on many hosts.
    if (skip.quiet || skip.reason === "vanished" || state.warned.has(skip.reason)) {
      logger.debug(msg, fields);
    } else {
      state.warned.add(skip.reason);
      logger.warn(`${msg} (logged once per reason while it lasts)`, fields);
    }
  }
}

async function collectVmProcesses(
  state: VmProcessState,
  scrape: { context: ScrapeContext; out: CollectorOutput },
): Promise<void> {
  const { context, out } = scrape;
  state.budget ??= await keptFileBudget(state.options.procfs);
  const { vms } = context.discovery;
  const dirs = new Set(vms.map((vm) => vm.dir));
  state.kept.retain(dirs);
  for (const dir of state.startByDir.keys()) if (!dirs.has(dir)) state.startByDir.delete(dir);
  for (const dir of state.ioRefused) if (!dirs.has(dir)) state.ioRefused.delete(dir);
  for (const [dir, seen] of context.observed) {
    if (seen.identity !== undefined) state.libvirtVms.add(dir);
  }
  for (const dir of state.libvirtVms) if (!dirs.has(dir)) state.libvirtVms.delete(dir);
  const processes = new VmProcessScrape(state, { context, out });
  const bootTime = vms.length === 0 ? Promise.resolve(undefined) : processes.bootTime();
  await Promise.all(vms.map((vm) => processes.readVm(vm, bootTime)));
  reportSkipped(state, { skipped: processes.skipped, out: out.families });
}

/**
 * Creates the vm_process collector. Each file is read through the scrape's
 * read guard, at most `concurrency` at once: a read that blocks is waited for
 * only until the deadline. A VM whose process is gone, a zombie, or another
 * process with its pid is skipped; a file or field that cannot be read costs
 * its own values; each is counted in `kvm_exporter_vm_process_errors`.
 *
 * @param options procfs, file access and a logger.
 * @returns The collector.
 */
export function createVmProcessCollector(options: VmProcessOptions): Collector {
  const state: VmProcessState = {
    options,
    limiter: new Limiter(options.concurrency ?? 32),
    startByDir: new Map(),
    ioRefused: new Set(),
    libvirtVms: new Set(),
    bootTime: undefined,
    warned: new Set(),
    kept: new KeptFiles((path) => options.fs.openKept(path)),
    budget: undefined,
  };
  return {
    name: VM_PROCESS,
    collect: (context: ScrapeContext, out: CollectorOutput) =>
      collectVmProcesses(state, { context, out }),
    close: () => state.kept.close(),
  };
}

/**
 * The vm_process collector's declaration: on by default, no flags of its own; it reads which
 * VMs libvirt identified, to leave their CPU time and resident memory to libvirt.
 */
export const VM_PROCESS_COLLECTOR = declareCollector({
  name: VM_PROCESS,
  defaultEnabled: true,
  flags: {},
  observes: [LIBVIRT],
  create: (_values, { procfs, fs, logger }) => createVmProcessCollector({ procfs, fs, logger }),
});
