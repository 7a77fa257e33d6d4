/**
 * Finds the VMs on this host on every scrape: the `PID-FD` dirs under the
 * debugfs root, named through vm.yaml and the VMM's command line.
 *
 * @module
 */

import type { VmConfig } from "../config/vm_config.ts";
import { parseVmDirName } from "../debugfs/stat_value.ts";
import type { Logger } from "../log/logger.ts";
import { describeReadError, type FileSystem, listDir } from "../system/file_system.ts";
import { type NamedVm, resolveVmNames } from "./vm_names.ts";
import { qmpSocketsFromArgv, splitCmdline, vmNameFromArgv } from "./vmm_cmdline.ts";

/** A VM found by discovery. */
export interface DiscoveredVm extends NamedVm {
  /** The VM dir's full path. */
  path: string;
  /** The QMP sockets on the VMM's command line, in order (none when procfs could not tell). */
  qmpSockets: readonly string[];
}

/** What a VMM's command line says about its VM. */
interface VmmCommandLine {
  name: string | undefined;
  qmpSockets: readonly string[];
}

function parseVmmCommandLine(argv: readonly string[] | undefined): VmmCommandLine {
  if (argv === undefined) return { name: undefined, qmpSockets: [] };
  return { name: vmNameFromArgv(argv), qmpSockets: qmpSocketsFromArgv(argv) };
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
}

/**
 * Lists VM dirs and names them. A VMM's command line is read once per
 * `PID-FD` dir and forgotten when the dir disappears.
 */
export class VmDiscovery {
  #options: VmDiscoveryOptions;
  /** What the VMM's command line says, parsed once per dir. */
  #processByDir = new Map<string, VmmCommandLine>();
  #warnedRenames = new Set<string>();
  #warnedProcfs = false;

  /**
   * Creates a discovery with empty caches.
   *
   * @param options Where to look.
   */
  constructor(options: VmDiscoveryOptions) {
    this.#options = options;
  }

  /**
   * Runs one discovery pass.
   *
   * @param config The current vm.yaml.
   * @param onlyListed Whether VMs missing from vm.yaml are dropped.
   * @returns What was found; never throws.
   */
  async discover(config: VmConfig, onlyListed: boolean): Promise<Discovery> {
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
    const candidates = await Promise.all(dirs.map(async ({ dir, pid }) => {
      let vmm = this.#processByDir.get(dir);
      if (vmm === undefined) {
        vmm = parseVmmCommandLine(await this.#readArgv(pid));
        this.#processByDir.set(dir, vmm);
      }
      return { dir, pid, cmdlineName: vmm.name };
    }));
    const vms = resolveVmNames(candidates, { config, onlyListed }).map((vm) => ({
      ...vm,
      path: `${kvmdebugDir}/${vm.dir}`,
      qmpSockets: this.#processByDir.get(vm.dir)?.qmpSockets ?? [],
    }));
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

  async #readArgv(pid: number): Promise<readonly string[] | undefined> {
    const path = `${this.#options.procfs}/${pid}/cmdline`;
    try {
      return splitCmdline(await this.#options.fs.readTextFile(path));
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
