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
import { describeReadError, type FileSystem, listDir } from "../system/file_system.ts";
import { Limiter } from "../system/limiter.ts";
import { type GuardedRead, ReadGuard } from "../system/read_guard.ts";
import { sliceSpent, yieldToEventLoop } from "../system/event_loop_slice.ts";
import { type NamedVm, resolveVmNames, type VmCandidate } from "./vm_names.ts";
import { qmpSocketsFromArgv, splitCmdline, vmNameFromArgv, vmUuidFromArgv } from "./vmm_cmdline.ts";

/** A VM found by discovery. */
export interface DiscoveredVm extends NamedVm {
  /** The VM dir's full path. */
  path: string;
  /** The QMP sockets on the VMM's command line, in order (none when procfs could not tell). */
  qmpSockets: readonly string[];
  /** The VMM's `-uuid`, lower case, when it has one (libvirt's domain UUID). */
  uuid?: string;
}

/** What a VMM's command line says about its VM. */
interface VmmCommandLine {
  name: string | undefined;
  qmpSockets: readonly string[];
  /** `-uuid`, lower case: the key to a libvirt domain. */
  uuid: string | undefined;
}

function parseVmmCommandLine(argv: readonly string[] | undefined): VmmCommandLine {
  if (argv === undefined) return { name: undefined, qmpSockets: [], uuid: undefined };
  return {
    name: vmNameFromArgv(argv),
    qmpSockets: qmpSocketsFromArgv(argv),
    uuid: vmUuidFromArgv(argv),
  };
}

/** What one discovery pass found. */
export interface Discovery {
  /** The files in the debugfs root (the all-VM stats). */
  rootFiles: Deno.DirEntry[];
  /** The VMs, in dir order. */
  vms: DiscoveredVm[];
  /** Set when the debugfs root could not be listed. */
  error: Error | undefined;
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

/** Command-line reads a discovery waits for at once. */
export const COMMAND_LINE_READS = 32;

/**
 * Lists VM dirs and names them. A VMM's command line is read once per
 * `PID-FD` dir and forgotten when the dir disappears. A read that blocks (a
 * VMM in D state) is waited for only until the deadline: the VM is named by
 * its dir meanwhile, and by its command line from the scrape after the read
 * returns.
 */
export class VmDiscovery {
  #options: VmDiscoveryOptions;
  /** What the VMM's command line says, parsed once per dir. */
  #processByDir = new Map<string, VmmCommandLine>();
  /** Command-line reads in flight, by dir. */
  #reading = new Map<string, GuardedRead<VmmCommandLine>>();
  #reads: ReadGuard;
  /** Command-line reads waited for at once; a wait ends by the deadline, freeing its place. */
  #limiter = new Limiter(COMMAND_LINE_READS);
  #warnedRenames = new Set<string>();
  #warnedProcfs = false;

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
      return { rootFiles: [], vms: [], error: error as Error };
    }
    const rootFiles: Deno.DirEntry[] = [];
    const dirs: { dir: string; pid: number }[] = [];
    for (const entry of entries) {
      const pid = entry.isDirectory ? parseVmDirName(entry.name) : undefined;
      if (pid !== undefined) dirs.push({ dir: entry.name, pid });
      else if (!entry.isDirectory) rootFiles.push(entry);
    }
    const present = new Set(dirs.map((d) => d.dir));
    for (const dir of this.#processByDir.keys()) {
      if (!present.has(dir)) this.#processByDir.delete(dir);
    }
    for (const dir of this.#warnedRenames) {
      if (!present.has(dir)) this.#warnedRenames.delete(dir);
    }
    const candidates = await Promise.all(await this.#startCommandLines(dirs, signal));
    const vms = resolveVmNames(candidates, { config, onlyListed }).map((vm): DiscoveredVm => {
      const vmm = this.#processByDir.get(vm.dir);
      const found: DiscoveredVm = {
        ...vm,
        path: `${kvmdebugDir}/${vm.dir}`,
        qmpSockets: vmm?.qmpSockets ?? [],
      };
      if (vmm?.uuid !== undefined) found.uuid = vmm.uuid;
      return found;
    });
    for (const vm of vms) {
      if (vm.renamedFrom !== undefined && !this.#warnedRenames.has(vm.dir)) {
        this.#warnedRenames.add(vm.dir);
        this.#options.logger.warn(
          "Two VMs resolve to one name; the later one gets @PID-FD (and ~N if that is taken)",
          {
            name: vm.renamedFrom,
            domain: vm.domain,
            kvm_debug_dir: vm.dir,
          },
        );
      }
    }
    return { rootFiles, vms, error: undefined };
  }

  /**
   * Every VM's command line, from the cache or read, letting the event loop run every few
   * milliseconds, with at most {@linkcode COMMAND_LINE_READS} reads waited for at once: a first
   * scrape of 20,000 VMs started 20,000 reads in one go, and their completions, all handled in one
   * turn of the event loop, held it for most of a second. A read not started by the deadline is
   * not started: the VM is named by its dir until a later scrape reads it.
   */
  async #startCommandLines(
    dirs: readonly { dir: string; pid: number }[],
    signal: AbortSignal,
  ): Promise<Promise<VmCandidate>[]> {
    const started: Promise<VmCandidate>[] = [];
    for (const { dir, pid } of dirs) {
      if (sliceSpent()) await yieldToEventLoop();
      const known = this.#processByDir.get(dir);
      const vmm = known !== undefined
        ? Promise.resolve(known)
        : this.#limiter.run(() =>
          signal.aborted ? Promise.resolve(undefined) : this.#commandLine(dir, pid, signal)
        );
      started.push(vmm.then((found) => ({ dir, pid, cmdlineName: found?.name })));
    }
    return started;
  }

  /** The VMM's command line, or undefined while its read is blocked past `signal`. */
  async #commandLine(
    dir: string,
    pid: number,
    signal: AbortSignal,
  ): Promise<VmmCommandLine | undefined> {
    const known = this.#processByDir.get(dir);
    if (known !== undefined) return known;
    let reading = this.#reading.get(dir);
    if (reading === undefined) {
      const path = `${this.#options.procfs}/${pid}/cmdline`;
      try {
        reading = this.#reads.begin(
          path,
          async () => parseVmmCommandLine(await this.#readArgv(path)),
        );
      } catch {
        return undefined; // Too many reads blocked: name it by its dir this time.
      }
      const started = reading;
      this.#reading.set(dir, started);
      void started.done.then((vmm) => {
        this.#reading.delete(dir);
        this.#processByDir.set(dir, vmm);
      });
    }
    // Blocked past an earlier deadline: no new wait (each would cost a quarter of a scrape).
    if (reading.blocked) return undefined;
    try {
      return await reading.wait(signal);
    } catch {
      return undefined; // Still blocked: named by its dir until the read returns.
    }
  }

  async #readArgv(path: string): Promise<readonly string[] | undefined> {
    try {
      const text = await this.#options.fs.readTextFile(path, { maxBytes: CMDLINE_MAX_BYTES });
      return splitCmdline(text);
    } catch (error) {
      // A process that just exited is normal; a procfs we may not read at all is worth one warning.
      const fields = { path, err: describeReadError(path, error) };
      const msg = "Cannot read the VMM's command line; naming the VM by its dir";
      if (error instanceof Deno.errors.NotFound || this.#warnedProcfs) {
        this.#options.logger.debug(msg, fields);
      } else {
        this.#warnedProcfs = true;
        this.#options.logger.warn(msg, fields);
      }
      return undefined;
    }
  }
}
