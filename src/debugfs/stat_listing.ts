/**
 * What kvm_stat reads: the stat files of the debugfs root, of each VM dir and
 * of each vCPU dir, and the listings kept between scrapes.
 *
 * A scrape lists each VM dir (to see VMs come and go and vCPUs hot-plugged)
 * but not its vCPU dirs: the stat files in a vCPU dir are made by KVM when the
 * vCPU is created and stay until the VM is destroyed, so their listing is kept
 * for the VM's lifetime. How the files are read is not this module's concern.
 *
 * @module
 */

import { parseVcpuDirName } from "./stat_value.ts";
import type { DiscoveredVm, Discovery } from "../discovery/vm_discovery.ts";
import type { VmDirListings } from "../discovery/vm_dir_listings.ts";
import { statKey, type StatLevel, type StatVm } from "../stats/stat.ts";
import { describeReadError, type FileSystem, listDir } from "../system/file_system.ts";
import type { Limiter } from "../system/limiter.ts";
import { sliceSpent, yieldToEventLoop } from "../system/event_loop_slice.ts";

/** One stat file, as listed. */
export interface StatFile {
  /** Its path. */
  path: string;
  /** Listed as a regular file (not a symlink, FIFO, ...). */
  regular: boolean;
  /** The file name: the stat's KVM name. */
  name: string;
  /** Root, VM or vCPU. */
  level: StatLevel;
  /** Its VM, below the root. */
  vm: StatVm | undefined;
  /** Its vCPU, in a vCPU dir. */
  vcpu: string | undefined;
  /** Its VM's domain, below the root. */
  domain: string | undefined;
  /** The stat's identity ({@linkcode statKey}), made once per listing. */
  key: string;
  /**
   * The message of the kernel's refusal of the file (EPERM: lockdown), kept for its VM's
   * lifetime: every later scrape counts the refusal again without opening the file. A string, not
   * the error: 5,656 of a locked-down 100x16 host's files are refused, ~700 bytes each as errors.
   */
  refused: string | undefined;
}

/** What is kept of one VM dir (or the root) between scrapes. */
export interface VmListing {
  /** The domain its files were made for: a rename (vm.yaml reload) starts afresh. */
  domain: string;
  /** VM-level files by name, reused while the scrape's listing shows them of the same type. */
  files: Map<string, StatFile>;
  /** Each vCPU dir's files, by dir name, listed once. */
  vcpus: Map<string, StatFile[]>;
  /** The files its reader Worker reads, and their paths; kept while unchanged. */
  worker: { files: StatFile[]; paths: string[] } | undefined;
  /** Paths a reader Worker was stuck on: read through the guarded async path from then on. */
  blocking: Set<string>;
  /**
   * The dir's identity ({@linkcode FileSystem.identitySync}) when first listed: while the kernel
   * refuses some of its files, each scrape checks it, and a recreated VM starts afresh.
   */
  identity: string | undefined;
  /** Files whose refusal is kept ({@linkcode StatFile.refused}). */
  refusals: number;
  /** The VM its files name, one object for all of them; undefined for the root. */
  vm: StatVm | undefined;
}

/** One VM's files in a scrape. */
export interface VmFiles {
  /** The VM's identity across scrapes: its dir, or {@linkcode ROOT_KEY} for the root. */
  key: string;
  /** What is kept of it. */
  listing: VmListing;
  /** Its files: the VM dir's, then its vCPU dirs'. */
  files: StatFile[];
}

/** One scrape's files: the root's and each VM's. */
export interface ScrapeFiles {
  /** The root's files. */
  root: StatFile[];
  /** What is kept of the root. */
  rootListing: VmListing;
  /** Each VM's files, in discovery order. */
  vms: VmFiles[];
  /** The vCPU dirs each VM dir listed, by VM dir. */
  vcpuCounts: Map<string, number>;
}

/** The key of the root's files: no VM dir is named so. */
export const ROOT_KEY = "";

/** Options of the {@linkcode StatListing} constructor. */
export interface StatListingOptions {
  /** The debugfs KVM dir (normalised). */
  kvmdebugDir: string;
  /** Deepest level listed: 0 root files, 1 VM dirs, 2 vCPU dirs. */
  depth: number;
  /** Only file names that match are listed. */
  include: RegExp | undefined;
  /** File names that match are not listed. */
  exclude: RegExp | undefined;
  /** File access. */
  fs: FileSystem;
  /** Bounds the async listings at once. */
  limiter: Limiter;
  /**
   * List vCPU dirs synchronously, one VM at a time (a memory-backed dir lists in a third of the
   * async op's time, and opening a dir never waits on a peer as a FIFO's open does); else through
   * the async op, every VM at once.
   */
  sync: boolean;
}

/** Where one scrape's listing looks. */
export interface ListingScrape {
  /** The VMs and root files found for this scrape. */
  discovery: Discovery;
  /** The VM dirs' entries, listed once per scrape for every collector. */
  vmDirs: VmDirListings;
  /** The scrape's deadline: no VM is listed past it. */
  signal: AbortSignal;
}

/** The VM a listing's files name: one object for all of a VM's files, not one per file. */
function statVmOf(listing: VmListing, vm: DiscoveredVm): StatVm {
  return listing.vm ??= { dir: vm.dir, domain: vm.domain };
}

/** Names of kept root files, at most: the root is a fixed set, capped all the same. */
const ROOT_FILES_MAX = 1024;

function statFile(
  entry: Deno.DirEntry,
  where: { dir: string; level: StatLevel; vm: StatVm | undefined; vcpu?: string },
): StatFile {
  const { vm } = where;
  const file = {
    path: `${where.dir}/${entry.name}`,
    regular: entry.isFile,
    name: entry.name,
    level: where.level,
    vm,
    vcpu: where.vcpu,
    domain: vm?.domain,
  };
  return { ...file, key: statKey(file), refused: undefined };
}

/**
 * An empty listing for a VM of `domain`.
 *
 * @param domain The VM's domain ("" for the root).
 * @returns The listing.
 */
export function emptyListing(domain: string): VmListing {
  return {
    domain,
    files: new Map(),
    vcpus: new Map(),
    worker: undefined,
    blocking: new Set(),
    identity: undefined,
    refusals: 0,
    vm: undefined,
  };
}

/**
 * The scrape's files in reading order, with what is kept of each dir: the root's, then each
 * VM's.
 *
 * @param scrape The scrape's files.
 * @returns The root as a VM ({@linkcode ROOT_KEY}), then the VMs.
 */
export function allVms(scrape: ScrapeFiles): VmFiles[] {
  return [{ key: ROOT_KEY, listing: scrape.rootListing, files: scrape.root }, ...scrape.vms];
}

/** The stat files to read, and what is kept of them across scrapes. */
export class StatListing {
  readonly #options: StatListingOptions;
  readonly #listings = new Map<string, VmListing>();
  /** The root's files, kept as a VM's are, so that a reader Worker keeps their list too. */
  #root: VmListing = emptyListing("");

  /**
   * Creates a listing with nothing kept yet.
   *
   * @param options Where and what to list.
   */
  constructor(options: StatListingOptions) {
    this.#options = options;
  }

  /**
   * The files of one scrape: the root's, then, deep enough, the VMs'. Forgets the VMs that are
   * gone.
   *
   * @param scrape The discovery, the VM dirs' listings and the deadline.
   * @returns The files.
   * @throws {Error} When the debugfs root could not be listed, saying why in one line.
   */
  async files(scrape: ListingScrape): Promise<ScrapeFiles> {
    const { kvmdebugDir, depth } = this.#options;
    const { discovery } = scrape;
    if (discovery.error !== undefined) {
      throw new Error(describeReadError(kvmdebugDir, discovery.error));
    }
    // The root is made again only when the kvm module is reloaded: its refusals are then retried.
    this.#root = this.#current(this.#root, kvmdebugDir) ?? this.#root;
    const root = this.#rootFiles(discovery.rootFiles);
    const vcpuCounts = new Map<string, number>();
    if (depth < 1) return { root, rootListing: this.#root, vms: [], vcpuCounts };
    const vms = await this.#listVms(scrape, vcpuCounts);
    const present = new Set(discovery.vms.map((vm) => vm.dir));
    for (const dir of this.#listings.keys()) if (!present.has(dir)) this.#listings.delete(dir);
    return { root, rootListing: this.#root, vms, vcpuCounts };
  }

  /**
   * A listing made afresh when `kept` is of a dir that has been made again since (or is new):
   * undefined while `kept` still holds. A `PID-FD` name is reused when a VMM makes a new VM on
   * the fd number of one it closed, or a new VMM gets an old PID, so the name cannot say whether
   * a refusal kept was the same VM's. The dir's inode number can (debugfs numbers each inode it
   * makes afresh; the VMM's start time would miss a VM remade in the same process): one stat
   * when the dir is first seen, and one per scrape only while the kernel refuses some of its
   * files (in place of every refused open). A VM remade between that first stat and a later
   * first refusal is only tried once more.
   */
  #current(kept: VmListing | undefined, path: string): VmListing | undefined {
    if (kept !== undefined && kept.refusals === 0 && kept.identity !== undefined) return undefined;
    let identity: string | undefined;
    try {
      identity = this.#options.fs.identitySync(path);
    } catch {
      identity = undefined; // Gone: its listing fails next, and nothing is kept of it.
    }
    if (kept === undefined) {
      const fresh = emptyListing("");
      fresh.identity = identity;
      return fresh;
    }
    if (identity !== undefined && identity === kept.identity) return undefined;
    if (kept.refusals === 0) {
      kept.identity = identity;
      return undefined;
    }
    const fresh = emptyListing(kept.domain);
    fresh.identity = identity;
    return fresh;
  }

  #wanted(name: string): boolean {
    const { include, exclude } = this.#options;
    return (include === undefined || include.test(name)) &&
      (exclude === undefined || !exclude.test(name));
  }

  #rootFiles(entries: readonly Deno.DirEntry[]): StatFile[] {
    const root: StatFile[] = [];
    const kept = this.#root.files;
    for (const entry of entries) {
      if (!this.#wanted(entry.name)) continue;
      let file = kept.get(entry.name);
      if (file === undefined || file.regular !== entry.isFile) {
        file = statFile(entry, { dir: this.#options.kvmdebugDir, level: "host", vm: undefined });
        if (kept.size < ROOT_FILES_MAX) kept.set(entry.name, file);
      }
      root.push(file);
    }
    return root;
  }

  /** Every VM's files: listed synchronously, yielding to the event loop every few ms, or all at once. */
  async #listVms(scrape: ListingScrape, vcpuCounts: Map<string, number>): Promise<VmFiles[]> {
    const { vms } = scrape.discovery;
    if (!this.#options.sync) {
      return (await Promise.all(vms.map((vm) => this.#listVm(vm, { scrape, vcpuCounts }))))
        .filter((v) => v !== undefined);
    }
    const files: VmFiles[] = [];
    for (const vm of vms) {
      if (sliceSpent()) await yieldToEventLoop();
      if (scrape.signal.aborted) break;
      const listed = await this.#listVm(vm, { scrape, vcpuCounts });
      if (listed !== undefined) files.push(listed);
    }
    return files;
  }

  /** The listing kept for the VM, started afresh when new, renamed or made again. */
  #listingOf(vm: DiscoveredVm): VmListing {
    let cached = this.#listings.get(vm.dir);
    if (cached !== undefined && cached.domain !== vm.domain) cached = undefined;
    const fresh = this.#current(cached, vm.path);
    if (fresh === undefined) return cached!;
    fresh.domain = vm.domain;
    this.#listings.set(vm.dir, fresh);
    return fresh;
  }

  /** The VM's files: its dir listed now, its vCPU dirs as listed when first seen. */
  async #listVm(
    vm: DiscoveredVm,
    where: { scrape: ListingScrape; vcpuCounts: Map<string, number> },
  ): Promise<VmFiles | undefined> {
    let entries: Deno.DirEntry[];
    try {
      entries = await where.scrape.vmDirs.entries(vm.path);
    } catch {
      this.#listings.delete(vm.dir);
      return undefined; // The VM exited after discovery listed it: it is simply gone.
    }
    const listing = this.#listingOf(vm);
    const files: StatFile[] = [];
    const vcpuDirs: { dir: string; vcpu: string }[] = [];
    for (const entry of entries) {
      if (entry.isDirectory) {
        const vcpu = parseVcpuDirName(entry.name);
        if (vcpu !== undefined) vcpuDirs.push({ dir: entry.name, vcpu });
        continue;
      }
      // A kept file passed the filters when it was listed first, and they do not change.
      let file = listing.files.get(entry.name);
      if (file === undefined || file.regular !== entry.isFile) {
        if (!this.#wanted(entry.name)) continue;
        file = statFile(entry, { dir: vm.path, level: "vm", vm: statVmOf(listing, vm) });
        listing.files.set(entry.name, file);
      }
      files.push(file);
    }
    where.vcpuCounts.set(vm.dir, vcpuDirs.length);
    if (this.#options.depth < 2) return { key: vm.dir, listing, files };
    const present = new Set(vcpuDirs.map((d) => d.dir));
    for (const dir of listing.vcpus.keys()) if (!present.has(dir)) listing.vcpus.delete(dir);
    const vcpuFiles = await this.#vcpuFiles({ listing, vm }, vcpuDirs);
    return { key: vm.dir, listing, files: files.concat(...vcpuFiles) };
  }

  /** The files of each vCPU dir: as kept, and without waiting when every dir's are. */
  #vcpuFiles(
    where: { listing: VmListing; vm: DiscoveredVm },
    vcpuDirs: readonly { dir: string; vcpu: string }[],
  ): StatFile[][] | Promise<StatFile[][]> {
    const { listing, vm } = where;
    const kept = vcpuDirs.map(({ dir }) => listing.vcpus.get(dir));
    if (!kept.includes(undefined)) return kept as StatFile[][];
    return Promise.all(
      vcpuDirs.map(({ dir, vcpu }, i) => kept[i] ?? this.#listVcpu({ listing, vm, dir, vcpu })),
    );
  }

  /** A vCPU dir seen for the first time. */
  async #listVcpu(
    where: { listing: VmListing; vm: DiscoveredVm; dir: string; vcpu: string },
  ): Promise<StatFile[]> {
    const { listing, vm, dir, vcpu } = where;
    const path = `${vm.path}/${dir}`;
    let entries: Deno.DirEntry[];
    try {
      entries = await this.#list(path);
    } catch {
      return []; // Gone with its VM; nothing is kept, so a later scrape lists it again.
    }
    const files = entries.filter((e) => !e.isDirectory && this.#wanted(e.name))
      .map((e) => statFile(e, { dir: path, level: "vcpu", vm: statVmOf(listing, vm), vcpu }));
    listing.vcpus.set(dir, files);
    return files;
  }

  /** Lists a dir that debugfs listed as a dir. */
  #list(path: string): Deno.DirEntry[] | Promise<Deno.DirEntry[]> {
    const { fs, limiter } = this.#options;
    if (this.#options.sync) return Array.from(fs.readDirSync(path));
    return limiter.run(() => listDir(fs, path));
  }
}
