/**
 * Finds the VMs on this host on every scrape: the `PID-FD` dirs under the
 * debugfs root, named through vm.yaml and the VMM's command line.
 *
 * @module
 */

import type { VmConfig } from "../config/vm_config.ts";
import { parseVmDirName } from "../debugfs/stat_value.ts";
import type { Logger } from "../log/logger.ts";
import { CMDLINE_MAX_BYTES } from "../system/bounded_read.ts";
import {
  classifyReadError,
  describeReadError,
  type FileSystem,
  listDir,
  type ReadErrorReason,
} from "../system/file_system.ts";
import { Limiter } from "../system/limiter.ts";
import { type GuardedRead, ReadGuard } from "../system/read_guard.ts";
import { sliceSpent, yieldToEventLoop } from "../system/event_loop_slice.ts";
import { type NamedVm, resolveVmNames, type VmCandidate } from "./vm_names.ts";
import {
  qmpSocketsFromArgv,
  splitCmdline,
  type TapInterface,
  tapInterfacesFromArgv,
  vmNameFromArgv,
  vmUuidFromArgv,
} from "./vmm_cmdline.ts";

/** A VM found by discovery. */
export interface DiscoveredVm extends NamedVm {
  /** The VM dir's full path. */
  path: string;
  /** The QMP sockets on the VMM's command line, in order (none when procfs could not tell). */
  qmpSockets: readonly string[];
  /** The VMM's `-uuid`, lower case, when it has one (libvirt's domain UUID). */
  uuid?: string;
  /** The tap devices the VMM's command line names, when it names any. */
  taps?: readonly TapInterface[];
}

/** What a VMM's command line says about its VM. */
interface VmmCommandLine {
  name: string | undefined;
  qmpSockets: readonly string[];
  /** `-uuid`, lower case: the key to a libvirt domain. */
  uuid: string | undefined;
  /** The tap devices it names. */
  taps: readonly TapInterface[];
}

/** How many command lines discovery reads at once: a burst of new VMs must not use up the fds. */
export const CMDLINE_READ_CONCURRENCY = 16;

/** Why a command line could not be read, in the order `kvm_exporter_cmdline_read_errors` lists them. */
export const CMDLINE_ERROR_REASONS: readonly ReadErrorReason[] = [
  "permission",
  "vanished",
  "too_large",
  "not_regular",
  "blocked",
  "other",
];

/** One attempt to read a command line: what it says, or why it could not be read. */
type CmdlineRead = { vmm: VmmCommandLine } | { error: unknown };

/** A command line read's outcome for one pass: blocked past the pass's deadline is "blocked". */
async function awaitCmdline(
  reading: GuardedRead<CmdlineRead>,
  signal: AbortSignal,
): Promise<VmmCommandLine | ReadErrorReason> {
  // Blocked past an earlier deadline: no new wait (each would cost a quarter of a scrape).
  if (reading.blocked) return "blocked";
  try {
    const read = await reading.wait(signal);
    return "vmm" in read ? read.vmm : classifyReadError(read.error);
  } catch {
    return "blocked"; // Still blocked: named by its dir until the read returns.
  }
}

function parseVmmCommandLine(argv: readonly string[]): VmmCommandLine {
  return {
    name: vmNameFromArgv(argv),
    qmpSockets: qmpSocketsFromArgv(argv),
    uuid: vmUuidFromArgv(argv),
    taps: tapInterfacesFromArgv(argv),
  };
}

/** What one discovery pass found. */
export interface Discovery {
  /** The files in the debugfs root (the all-VM stats). */
  rootFiles: Deno.DirEntry[];
  /**
   * The VMs, in dir order: the very array of the pass before while the VM dirs and vm.yaml are
   * the same, so read-only.
   */
  vms: readonly DiscoveredVm[];
  /** Set when the debugfs root could not be listed. */
  error: Error | undefined;
  /**
   * The VMs whose command line could not be read in this pass, by dir, and why: each is named
   * without it this time and read again on the next pass.
   */
  cmdlineErrors: Map<string, ReadErrorReason>;
}

/** Options of {@linkcode VmDiscovery}. */
export interface VmDiscoveryOptions {
  /** The debugfs KVM dir. */
  kvmdebugDir: string;
  /** procfs mount point. */
  procfs: string;
  /** File access. */
  fs: FileSystem;
  /** Logger. */
  logger: Logger;
  /** Where command-line reads are tracked; one of its own by default. */
  reads?: ReadGuard;
}

/** One pass's input to naming and its outcome: the next pass reuses the outcome if they match. */
interface NamedPass {
  config: VmConfig;
  onlyListed: boolean;
  /** The VM dirs, in listing order. */
  dirs: readonly string[];
  vms: DiscoveredVm[];
}

/** Whether two listings have the same VM dirs in the same order. */
function sameDirs(a: readonly string[], b: readonly { dir: string }[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]!.dir) return false;
  return true;
}

/**
 * Lists VM dirs and names them. A VMM's command line is read once per
 * `PID-FD` dir and forgotten when the dir disappears; only a read that
 * succeeded is kept: one that failed (EMFILE, a VMM that had not exec'd yet)
 * is tried again on the next pass, so a passing error never becomes a VM's
 * name. At most {@linkcode CMDLINE_READ_CONCURRENCY} reads run at once. A
 * read that blocks (a VMM in D state) is waited for only until the deadline:
 * the VM is named by its dir meanwhile, and by its command line from the
 * scrape after the read returns.
 */
export class VmDiscovery {
  #options: VmDiscoveryOptions;
  /** What the VMM's command line says, parsed once per dir. */
  #processByDir = new Map<string, VmmCommandLine>();
  /** Command-line reads in flight, by dir. */
  #reading = new Map<string, GuardedRead<CmdlineRead>>();
  #reads: ReadGuard;
  #limiter = new Limiter(CMDLINE_READ_CONCURRENCY);
  #warnedRenames = new Set<string>();
  /** Reasons of command-line read errors logged at warn, until a pass has none of that reason. */
  #warnedReads = new Set<ReadErrorReason>();
  /**
   * The last pass whose VMs all had their command line: its VMs are the next pass's while the
   * dirs and vm.yaml are the same (a name depends on nothing else; a known command line is
   * never read again while its dir lives).
   */
  #named: NamedPass | undefined;

  /**
   * Creates a discovery with empty caches.
   *
   * @param options Where to look.
   */
  constructor(options: VmDiscoveryOptions) {
    this.#options = options;
    this.#reads = options.reads ?? new ReadGuard();
  }

  /**
   * Runs one discovery pass.
   *
   * @param config The current vm.yaml.
   * @param onlyListed Whether VMs missing from vm.yaml are dropped.
   * @param signal When to stop waiting for command lines; never by default.
   * @returns What was found; never throws.
   */
  async discover(
    config: VmConfig,
    onlyListed: boolean,
    signal: AbortSignal = new AbortController().signal,
  ): Promise<Discovery> {
    const { kvmdebugDir, fs } = this.#options;
    let entries: Deno.DirEntry[];
    try {
      entries = await listDir(fs, kvmdebugDir);
    } catch (error) {
      return { rootFiles: [], vms: [], error: error as Error, cmdlineErrors: new Map() };
    }
    const rootFiles: Deno.DirEntry[] = [];
    const dirs: { dir: string; pid: number }[] = [];
    for (const entry of entries) {
      const pid = entry.isDirectory ? parseVmDirName(entry.name) : undefined;
      if (pid !== undefined) dirs.push({ dir: entry.name, pid });
      else if (!entry.isDirectory) rootFiles.push(entry);
    }
    const named = this.#named;
    if (named?.config === config && named.onlyListed === onlyListed && sameDirs(named.dirs, dirs)) {
      return { rootFiles, vms: named.vms, error: undefined, cmdlineErrors: new Map() };
    }
    const present = new Set(dirs.map((d) => d.dir));
    for (const dir of this.#processByDir.keys()) {
      if (!present.has(dir)) this.#processByDir.delete(dir);
    }
    for (const dir of this.#warnedRenames) {
      if (!present.has(dir)) this.#warnedRenames.delete(dir);
    }
    const cmdlineErrors = new Map<string, ReadErrorReason>();
    const candidates = await this.#candidates(dirs, { signal, cmdlineErrors });
    const vms = resolveVmNames(candidates, { config, onlyListed }).map((vm): DiscoveredVm => {
      const vmm = this.#processByDir.get(vm.dir);
      const found: DiscoveredVm = {
        ...vm,
        path: `${kvmdebugDir}/${vm.dir}`,
        qmpSockets: vmm?.qmpSockets ?? [],
      };
      if (vmm?.uuid !== undefined) found.uuid = vmm.uuid;
      if (vmm !== undefined && vmm.taps.length > 0) found.taps = vmm.taps;
      return found;
    });
    this.#warnRenames(vms);
    const failing = new Set(cmdlineErrors.values());
    for (const reason of this.#warnedReads) {
      if (!failing.has(reason)) this.#warnedReads.delete(reason);
    }
    // Named without a command line (not read yet, or failed): named again on the next pass.
    this.#named = cmdlineErrors.size === 0
      ? { config, onlyListed, dirs: dirs.map((d) => d.dir), vms }
      : undefined;
    return { rootFiles, vms, error: undefined, cmdlineErrors };
  }

  /** Each VM dir with its command-line name; why one is not known goes to `cmdlineErrors`. */
  async #candidates(
    dirs: readonly { dir: string; pid: number }[],
    pass: { signal: AbortSignal; cmdlineErrors: Map<string, ReadErrorReason> },
  ): Promise<VmCandidate[]> {
    const started: (VmCandidate | Promise<VmCandidate>)[] = [];
    for (const { dir, pid } of dirs) {
      const known = this.#processByDir.get(dir);
      if (known !== undefined) {
        started.push({ dir, pid, cmdlineName: known.name });
        continue;
      }
      // A first pass over 20,000 VMs would otherwise start every read in one turn of the loop.
      if (sliceSpent()) await yieldToEventLoop();
      started.push(
        this.#commandLine(dir, pid, pass.signal).then((vmm) => {
          if (typeof vmm !== "string") return { dir, pid, cmdlineName: vmm.name };
          pass.cmdlineErrors.set(dir, vmm);
          return { dir, pid, cmdlineName: undefined };
        }),
      );
    }
    return await Promise.all(started);
  }

  /** Warns once per VM dir that was renamed because another VM has its name. */
  #warnRenames(vms: readonly DiscoveredVm[]): void {
    for (const vm of vms) {
      if (vm.renamedFrom === undefined || this.#warnedRenames.has(vm.dir)) continue;
      this.#warnedRenames.add(vm.dir);
      this.#options.logger.warn(
        "Two VMs resolve to one name; the later one gets @PID-FD (and ~N if that is taken)",
        { name: vm.renamedFrom, domain: vm.domain, kvm_debug_dir: vm.dir },
      );
    }
  }

  /**
   * The VMM's command line, or why it is not known in this pass. A new read takes one of the
   * limiter's slots first and enters the read guard only then: a read still waiting for its turn
   * at the deadline was never started, so it is not a blocked read (which the guard counts and
   * caps). The slot is given back when the read returns or the deadline passes, whichever comes
   * first: a read blocked for good must not hold it.
   */
  async #commandLine(
    dir: string,
    pid: number,
    signal: AbortSignal,
  ): Promise<VmmCommandLine | ReadErrorReason> {
    const known = this.#processByDir.get(dir);
    if (known !== undefined) return known;
    const reading = this.#reading.get(dir);
    if (reading !== undefined) return await awaitCmdline(reading, signal); // An earlier pass's.
    return await this.#limiter.run(async () => {
      if (signal.aborted) return "blocked"; // Its turn came after the deadline: not read this time.
      const path = `${this.#options.procfs}/${pid}/cmdline`;
      let started: GuardedRead<CmdlineRead>;
      try {
        started = this.#reads.begin(path, () => this.#readArgv(path));
      } catch {
        return "blocked"; // Too many reads blocked: name it by its dir this time.
      }
      this.#reading.set(dir, started);
      void started.done.then((read) => {
        this.#reading.delete(dir);
        if ("vmm" in read) this.#processByDir.set(dir, read.vmm);
        else this.#logReadError(path, read.error);
      });
      return await awaitCmdline(started, signal);
    });
  }

  async #readArgv(path: string): Promise<CmdlineRead> {
    try {
      const text = await this.#options.fs.readTextFile(path, { maxBytes: CMDLINE_MAX_BYTES });
      return { vmm: parseVmmCommandLine(splitCmdline(text)) };
    } catch (error) {
      return { error };
    }
  }

  /**
   * Warns once per reason while VMs keep failing for it (one cause, such as a procfs Deno may not
   * read or fds run out, fails every VM: one line, not one per VM); the rest at debug. A process
   * that just exited, or a read not started or blocked at the deadline (kvm_exporter_blocked_reads
   * tells), is debug only.
   */
  #logReadError(path: string, error: unknown): void {
    const reason = classifyReadError(error);
    const fields = { path, reason, err: describeReadError(path, error) };
    const msg = "Cannot read the VMM's command line; naming the VM without it and trying again " +
      "on the next scrape";
    if (reason === "vanished" || reason === "blocked" || this.#warnedReads.has(reason)) {
      this.#options.logger.debug(msg, fields);
    } else {
      this.#warnedReads.add(reason);
      this.#options.logger.warn(`${msg} (logged once)`, fields);
    }
  }
}
