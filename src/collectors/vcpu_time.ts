/**
 * The `vcpu_time` collector: each vCPU thread's time on a CPU and time
 * runnable but waiting for one (run delay: steal, as the guest sees it), from
 * `<procfs>/PID/task/TID/schedstat`, for every VM, libvirt or not. The thread
 * ids come from debugfs (`vcpuN/pid`, readable under lockdown), else from the
 * thread ids QMP's `query-cpus-fast` gave in an earlier scrape (the registry
 * declares that it observes the qmp collector).
 *
 * Its families have Prometheus names in both naming schemes:
 * `kvm_vcpu_cpu_seconds_total` and `kvm_vcpu_delay_seconds_total`.
 *
 * @module
 */

import { parseVcpuDirName } from "../debugfs/stat_value.ts";
import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import { type FamilySet, nanosecondsAsSeconds } from "../metrics/model.ts";
import { STAT_FILE_MAX_BYTES } from "../system/bounded_read.ts";
import type { FileSystem } from "../system/file_system.ts";
import { type KeptFileBudget, keptFileBudget } from "../system/kept_file.ts";
import { KeptFiles } from "../system/kept_files.ts";
import { Limiter } from "../system/limiter.ts";
import { MAX_SCHEDSTAT_BYTES, parseSchedstat, type Schedstat } from "./schedstat.ts";
import type { Collector, CollectorOutput, ScrapeContext } from "./collector.ts";
import { declareCollector } from "./collector_declaration.ts";
import { QMP } from "./qmp.ts";

/** The name of this collector. */
export const VCPU_TIME = "vcpu_time";

/** Options of {@linkcode createVcpuTimeCollector}. */
export interface VcpuTimeOptions {
  /** procfs mount point. */
  procfs: string;
  /** File access. */
  fs: FileSystem;
  /** Files read at once. Default 32. */
  concurrency?: number;
  /** Counts kept-open schedstat files; the process's ({@linkcode keptFileBudget}) by default. */
  budget?: KeptFileBudget;
}

/** One vCPU's thread. */
interface VcpuThread {
  vcpu: string;
  tid: number;
}

const CPU = {
  name: "kvm_vcpu_cpu_seconds_total",
  help: "Time the vCPU's host thread ran on a CPU (schedstat; libvirt's vcpu.N.time).",
  type: "counter",
} as const;

const DELAY = {
  name: "kvm_vcpu_delay_seconds_total",
  help:
    "Time the vCPU's host thread was runnable but waiting for a CPU: steal, as the guest sees it (schedstat; libvirt's vcpu.N.delay).",
  type: "counter",
} as const;

/**
 * Adds one vCPU's two counters, in seconds, exact to the nanosecond.
 *
 * @param out Where the families go.
 * @param where The VM's domain and the vCPU.
 * @param stat The thread's schedstat.
 */
export function addVcpuTime(
  out: FamilySet,
  where: { domain: string; vcpu: string },
  stat: Schedstat,
): void {
  const labels = [["domain", where.domain], ["vcpu", where.vcpu]] as const;
  out.add(CPU, labels, nanosecondsAsSeconds(stat.cpuNs));
  out.add(DELAY, labels, nanosecondsAsSeconds(stat.delayNs));
}

/** The collector's options and what it keeps across scrapes. */
interface VcpuTimeState {
  readonly options: VcpuTimeOptions;
  readonly limiter: Limiter;
  /** Each VM's vCPU threads from debugfs, by VM dir. */
  readonly threadsByDir: Map<string, VcpuThread[]>;
  /** Each VM's vCPU thread ids as QMP last reported them, by VM dir and vCPU index. */
  readonly qmpThreads: Map<string, ReadonlyMap<string, number>>;
  /** Each VM's kept-open schedstat files. */
  readonly kept: KeptFiles;
  /** Counts the kept files against the open file limit; set on the first scrape. */
  budget: KeptFileBudget | undefined;
}

/** One scrape of the vCPU threads. */
class VcpuTimeScrape {
  readonly #state: VcpuTimeState;
  readonly #context: ScrapeContext;
  readonly #out: FamilySet;
  /** The schedstat paths read in this scrape. */
  readonly #read = new Set<string>();

  constructor(state: VcpuTimeState, scrape: { context: ScrapeContext; out: FamilySet }) {
    this.#state = state;
    this.#context = scrape.context;
    this.#out = scrape.out;
  }

  /**
   * Reads a small file that was not listed: it may be anything, so the guard bounds the wait.
   * A debugfs `pid` file is opened non-blocking, as kvm_stat opens it: a read of one path is
   * shared by both collectors, and a FIFO there is not a stat to wait for.
   */
  #readGuarded(
    path: string,
    options: { maxBytes: number; nonBlocking?: boolean },
  ): Promise<string> {
    const context = this.#context;
    const { fs } = this.#state.options;
    return this.#state.limiter.run(() =>
      context.reads.read(path, () => fs.readTextFile(path, options), context.signal)
    );
  }

  /** The vCPU dirs of a VM: `vcpuN` → N. */
  async #vcpuDirs(vm: DiscoveredVm): Promise<[dir: string, vcpu: string][]> {
    let entries: Deno.DirEntry[];
    try {
      entries = await this.#context.vmDirs.entries(vm.path); // kvm_stat's listing, if it ran.
    } catch {
      return []; // The VM exited after discovery.
    }
    return entries.flatMap((entry) => {
      const vcpu = entry.isDirectory ? parseVcpuDirName(entry.name) : undefined;
      return vcpu === undefined ? [] : [[entry.name, vcpu] as [string, string]];
    });
  }

  /** A vCPU's thread id from debugfs's `vcpuN/pid`, if it has a readable one. */
  async #debugfsThread(vm: DiscoveredVm, dir: string): Promise<number | undefined> {
    try {
      const text = await this.#readGuarded(`${vm.path}/${dir}/pid`, {
        maxBytes: STAT_FILE_MAX_BYTES,
        nonBlocking: true,
      });
      const tid = Number(text.trim());
      return Number.isSafeInteger(tid) && tid > 0 ? tid : undefined;
    } catch {
      return undefined; // No pid file (older kernels), a VM that exited, or a blocked read.
    }
  }

  /**
   * Reads one vCPU's schedstat; false when its thread is gone. The file is kept open once read
   * (within the budget) and read again from its start on later scrapes: an open file's read
   * costs a syscall, where an open costs Deno's path checks and two more. Keeping it is safe: it
   * holds only the thread's pid, and once the thread exits its read fails (ESRCH), even if the
   * number is reused, so the file is closed and forgotten, and the guarded read says why.
   */
  async #readVcpu(vm: DiscoveredVm, thread: VcpuThread): Promise<boolean> {
    const path = `${this.#state.options.procfs}/${vm.pid}/task/${thread.tid}/schedstat`;
    this.#read.add(path);
    let text = this.#state.kept.read(vm.dir, path, MAX_SCHEDSTAT_BYTES);
    let stat: Schedstat;
    try {
      if (text === undefined) {
        text = await this.#readGuarded(path, { maxBytes: MAX_SCHEDSTAT_BYTES });
        this.#keep(vm.dir, path);
      }
      stat = parseSchedstat(text);
    } catch {
      return false; // The thread is gone (or is not this VMM's): nothing to report for it.
    }
    addVcpuTime(this.#out, { domain: vm.domain, vcpu: thread.vcpu }, stat);
    return true;
  }

  /** Keeps a schedstat file open that was just read the guarded way, within the budget. */
  #keep(dir: string, path: string): void {
    const { budget } = this.#state;
    if (this.#context.signal.aborted || budget === undefined) return;
    this.#state.kept.keep(dir, path, budget);
  }

  /**
   * Reads a VM's vCPUs by debugfs's `vcpuN/pid` files; returns how many it found. A vCPU keeps
   * its thread for its lifetime, so the ids are kept per VM dir while the vCPU count stays the
   * same and every thread answers: a scrape then lists the VM dir only (to see vCPU hotplug).
   */
  async #readDebugfsVcpus(vm: DiscoveredVm): Promise<number> {
    const { threadsByDir } = this.#state;
    const dirs = await this.#vcpuDirs(vm);
    const cached = threadsByDir.get(vm.dir);
    const known = cached !== undefined && cached.length === dirs.length;
    const threads: VcpuThread[] = [];
    let answered = 0;
    // Each vCPU on its own: one whose pid file blocks does not hold the others.
    await Promise.all((known ? cached : dirs).map(async (entry) => {
      let thread: VcpuThread;
      if ("tid" in entry) thread = entry;
      else {
        const tid = await this.#debugfsThread(vm, entry[0]);
        if (tid === undefined) return;
        thread = { vcpu: entry[1], tid };
      }
      threads.push(thread);
      if (await this.#readVcpu(vm, thread)) answered++;
    }));
    if (answered > 0 && answered === dirs.length) threadsByDir.set(vm.dir, threads);
    else threadsByDir.delete(vm.dir);
    return threads.length;
  }

  /** Reads a VM's vCPUs by debugfs, else by the thread ids QMP gave. */
  async readVm(vm: DiscoveredVm): Promise<void> {
    await this.#readVcpus(vm);
    this.#forgetUnread(vm.dir);
  }

  async #readVcpus(vm: DiscoveredVm): Promise<void> {
    if (await this.#readDebugfsVcpus(vm) > 0) return;
    if (this.#context.signal.aborted) return;
    const fromQmp = [...this.#state.qmpThreads.get(vm.dir) ?? []];
    await Promise.all(fromQmp.map(([vcpu, tid]) => this.#readVcpu(vm, { vcpu, tid })));
  }

  /**
   * Closes the VM's kept files this scrape did not read: a thread the VM no longer names (a
   * vCPU unplugged and plugged again gets a new one) would hold a place in the budget for the
   * VM's lifetime. Not after the deadline: files not read by then are only late.
   */
  #forgetUnread(dir: string): void {
    if (!this.#context.signal.aborted) this.#state.kept.forgetUnread(dir, this.#read);
  }
}

async function collectVcpuTime(
  state: VcpuTimeState,
  scrape: { context: ScrapeContext; out: CollectorOutput },
): Promise<void> {
  const { context, out } = scrape;
  state.budget ??= state.options.budget ?? await keptFileBudget(state.options.procfs);
  const { qmpThreads } = state;
  const { vms } = context.discovery;
  const dirs = new Set(vms.map((vm) => vm.dir));
  // Kept across scrapes: a VM whose QMP query failed once keeps the ids it had.
  for (const [dir, seen] of context.observed) {
    if (seen.vcpuThreads !== undefined) qmpThreads.set(dir, seen.vcpuThreads);
  }
  for (const dir of qmpThreads.keys()) if (!dirs.has(dir)) qmpThreads.delete(dir);
  for (const dir of state.threadsByDir.keys()) if (!dirs.has(dir)) state.threadsByDir.delete(dir);
  state.kept.retain(dirs);
  const vcpus = new VcpuTimeScrape(state, { context, out: out.families });
  await Promise.all(vms.map((vm) => vcpus.readVm(vm)));
}

/**
 * Creates the vcpu_time collector. A thread that is gone (the VM exited or
 * unplugged the vCPU) is skipped; any other read failure of one vCPU is
 * skipped too, never failing the rest. Neither file was listed as a regular
 * file, so both reads go through the scrape's read guard: one that blocks
 * (a FIFO) is waited for only until the deadline, and not read again while
 * it stays blocked. A schedstat file read once is kept open for its thread's
 * lifetime and read again from its start, within the budget of kept files.
 *
 * @param options procfs and file access.
 * @returns The collector.
 */
export function createVcpuTimeCollector(options: VcpuTimeOptions): Collector {
  const state: VcpuTimeState = {
    options,
    limiter: new Limiter(options.concurrency ?? 32),
    threadsByDir: new Map(),
    qmpThreads: new Map(),
    kept: new KeptFiles((path) => options.fs.openKept(path)),
    budget: undefined,
  };
  return {
    name: VCPU_TIME,
    collect: (context: ScrapeContext, out: CollectorOutput) =>
      collectVcpuTime(state, { context, out }),
    close: () => state.kept.close(),
  };
}

/** The vcpu_time collector's declaration: on by default, no flags of its own, reads QMP's ids. */
export const VCPU_TIME_COLLECTOR = declareCollector({
  name: VCPU_TIME,
  defaultEnabled: true,
  flags: {},
  observes: [QMP],
  create: (_values, { procfs, fs }) => createVcpuTimeCollector({ procfs, fs }),
});
