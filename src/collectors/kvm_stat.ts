/**
 * The `kvm_stat` collector: KVM's debugfs stats, one stat per file, typed by
 * the catalog or, for stats it does not know, by the file's mode.
 *
 * A scrape lists each VM dir (to see VMs come and go and vCPUs hot-plugged)
 * but not its vCPU dirs: the stat files in a vCPU dir are made by KVM when
 * the vCPU is created and stay until the VM is destroyed, so their listing is
 * kept for the VM's lifetime. Values are read fresh every scrape: on a host
 * with many files by a small pool of reader Workers (the real file system
 * only), else in one synchronous loop that yields to the event loop every few
 * milliseconds.
 *
 * @module
 */

import { parseStatValue, parseVcpuDirName } from "../debugfs/stat_value.ts";
import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import { catalogType } from "../stats/catalog.ts";
import { statKey, type StatLevel, type StatType, type StatVm, untypedStat } from "../stats/stat.ts";
import { typeFromMode } from "../stats/stat_type.ts";
import {
  classifyReadError,
  describeReadError,
  type FileSystem,
  listDir,
} from "../system/file_system.ts";
import { STAT_FILE_MAX_BYTES, tooLarge } from "../system/bounded_read.ts";
import { Limiter } from "../system/limiter.ts";
import { sliceSpent, yieldToEventLoop } from "../system/event_loop_slice.ts";
import { DeadlineError } from "../system/read_guard.ts";
import type { ReaderPool, VmBatch } from "../debugfs/reader_pool.ts";
import type { SideEntry, StatFilesResult } from "../debugfs/reader_worker.ts";
import type { Collector, CollectorOutput, ScrapeContext } from "./collector.ts";

/** Options of {@linkcode createKvmStatCollector}. */
export interface KvmStatOptions {
  /** The debugfs KVM dir (normalised). */
  kvmdebugDir: string;
  /** Deepest level read: 0 root files, 1 VM dirs, 2 vCPU dirs. */
  depth: number;
  /** Only file names that match are read. */
  include: RegExp | undefined;
  /** File names that match are not read. */
  exclude: RegExp | undefined;
  /** File access. */
  fs: FileSystem;
  /** Dirs listed, and files read asynchronously, at once. Default 32. */
  concurrency?: number;
  /**
   * Reader Workers, used once a scrape reads at least `minFiles` files (then for good). Only
   * with the real file system: they read through Deno's file API, not `fs`.
   */
  readers?: { pool: ReaderPool; minFiles: number };
}

/** Files a scrape must read before reader Workers start: below that, their RSS is not worth it. */
export const READER_MIN_FILES = 2000;

/** The name of this collector. */
export const KVM_STAT = "kvm_stat";

const MODE_CACHE_SIZE = 1024;
/** Files read between two looks at the clock and the deadline. */
const CLOCK_EVERY = 64;

interface StatFile {
  path: string;
  /** Listed as a regular file (not a symlink, FIFO, ...). */
  regular: boolean;
  /** The file name: the stat's KVM name. */
  name: string;
  level: StatLevel;
  vm: StatVm | undefined;
  vcpu: string | undefined;
  domain: string | undefined;
  /** The stat's identity ({@linkcode statKey}), made once per listing. */
  key: string;
}

/** What is kept of one VM dir between scrapes. */
interface VmListing {
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
}

/** One VM's files in a scrape. */
interface VmFiles {
  key: string;
  listing: VmListing;
  files: StatFile[];
}

/** One scrape's files: the root's and each VM's. */
interface ScrapeFiles {
  root: StatFile[];
  vms: VmFiles[];
}

function statFile(
  entry: Deno.DirEntry,
  where: { dir: string; level: StatLevel; vm: DiscoveredVm | undefined; vcpu?: string },
): StatFile {
  const { vm } = where;
  const file = {
    path: `${where.dir}/${entry.name}`,
    regular: entry.isFile,
    name: entry.name,
    level: where.level,
    vm: vm === undefined ? undefined : { dir: vm.dir, domain: vm.domain },
    vcpu: where.vcpu,
    domain: vm?.domain,
  };
  return { ...file, key: statKey(file) };
}

/** The collector's options and what it keeps across scrapes. */
interface KvmStatState {
  readonly options: KvmStatOptions;
  readonly limiter: Limiter;
  readonly listings: Map<string, VmListing>;
  /** The root's files, kept as a VM's are, so that a reader Worker keeps their list too. */
  readonly root: VmListing;
  // Only stats the catalog does not know cost a stat() call, once per name: KVM gives a stat the
  // same mode at every level. Names come from the kernel, so the cache stays small; it is capped
  // all the same.
  readonly modeTypes: Map<string, StatType>;
}

function wanted(options: KvmStatOptions, name: string): boolean {
  const { include, exclude } = options;
  return (include === undefined || include.test(name)) &&
    (exclude === undefined || !exclude.test(name));
}

/**
 * Lists a dir that debugfs listed as a dir: synchronously when the file system can (a
 * memory-backed dir lists in a third of the async op's time, and opening a dir never waits on
 * a peer as a FIFO's open does), otherwise through the async op.
 */
function list(state: KvmStatState, path: string): Deno.DirEntry[] | Promise<Deno.DirEntry[]> {
  const { fs } = state.options;
  if (fs.readDirSync !== undefined) return Array.from(fs.readDirSync(path));
  return state.limiter.run(() => listDir(fs, path));
}

/** Every VM's files, yielding to the event loop between VMs every few milliseconds. */
async function listVms(state: KvmStatState, context: ScrapeContext): Promise<VmFiles[]> {
  const { vms } = context.discovery;
  if (state.options.fs.readDirSync === undefined) {
    return (await Promise.all(
      vms.map((vm) => listVm(state, { vm, context })),
    )).filter((v) => v !== undefined);
  }
  const files: VmFiles[] = [];
  for (const vm of vms) {
    if (sliceSpent()) await yieldToEventLoop();
    if (context.signal.aborted) break;
    const listed = await listVm(state, { vm, context });
    if (listed !== undefined) files.push(listed);
  }
  return files;
}

function emptyListing(domain: string): VmListing {
  return { domain, files: new Map(), vcpus: new Map(), worker: undefined, blocking: new Set() };
}

/** The listing kept for the VM, started afresh when new or renamed. */
function listingOf(state: KvmStatState, vm: DiscoveredVm): VmListing {
  let cached = state.listings.get(vm.dir);
  if (cached === undefined || cached.domain !== vm.domain) {
    cached = emptyListing(vm.domain);
    state.listings.set(vm.dir, cached);
  }
  return cached;
}

/** The key of the root's files in the reader pool: no VM dir is named so. */
const ROOT_KEY = "";

/** The VM's files: its dir listed now, its vCPU dirs as listed when first seen. */
async function listVm(
  state: KvmStatState,
  where: { vm: DiscoveredVm; context: ScrapeContext },
): Promise<VmFiles | undefined> {
  const { vm, context: { vcpuCounts, vmDirs } } = where;
  let entries: Deno.DirEntry[];
  try {
    entries = await vmDirs.entries(vm.path);
  } catch {
    state.listings.delete(vm.dir);
    return undefined; // The VM exited after discovery listed it: it is simply gone.
  }
  const listing = listingOf(state, vm);
  const files: StatFile[] = [];
  const vcpuDirs: { dir: string; vcpu: string }[] = [];
  for (const entry of entries) {
    const vcpu = entry.isDirectory ? parseVcpuDirName(entry.name) : undefined;
    if (vcpu !== undefined) vcpuDirs.push({ dir: entry.name, vcpu });
    if (entry.isDirectory || !wanted(state.options, entry.name)) continue;
    let file = listing.files.get(entry.name);
    if (file === undefined || file.regular !== entry.isFile) {
      file = statFile(entry, { dir: vm.path, level: "vm", vm });
      listing.files.set(entry.name, file);
    }
    files.push(file);
  }
  vcpuCounts.set(vm.dir, vcpuDirs.length);
  if (state.options.depth < 2) return { key: vm.dir, listing, files };
  const present = new Set(vcpuDirs.map((d) => d.dir));
  for (const dir of listing.vcpus.keys()) if (!present.has(dir)) listing.vcpus.delete(dir);
  const vcpuFiles = await Promise.all(
    vcpuDirs.map(({ dir, vcpu }) =>
      listing.vcpus.get(dir) ?? listVcpu(state, { listing, vm, dir, vcpu })
    ),
  );
  return { key: vm.dir, listing, files: files.concat(...vcpuFiles) };
}

/** A vCPU dir seen for the first time. */
interface VcpuDir {
  listing: VmListing;
  vm: DiscoveredVm;
  dir: string;
  vcpu: string;
}

async function listVcpu(state: KvmStatState, where: VcpuDir): Promise<StatFile[]> {
  const { listing, vm, dir, vcpu } = where;
  const path = `${vm.path}/${dir}`;
  let entries: Deno.DirEntry[];
  try {
    entries = await list(state, path);
  } catch {
    return []; // Gone with its VM; nothing is kept, so a later scrape lists it again.
  }
  const files = entries.filter((e) => !e.isDirectory && wanted(state.options, e.name))
    .map((e) => statFile(e, { dir: path, level: "vcpu", vm, vcpu }));
  listing.vcpus.set(dir, files);
  return files;
}

/** Forgets the listings of VMs that are gone, and tells the reader Workers. */
function prune(state: KvmStatState, vms: readonly DiscoveredVm[]): void {
  const { listings } = state;
  const pool = state.options.readers?.pool;
  if (listings.size === 0 && pool === undefined) return;
  const present = new Set(vms.map((vm) => vm.dir));
  for (const dir of listings.keys()) if (!present.has(dir)) listings.delete(dir);
  pool?.retain(present.add(ROOT_KEY));
}

function knownType(state: KvmStatState, name: string): StatType | undefined {
  return catalogType(name) ?? state.modeTypes.get(name) ??
    (state.options.fs.mode === undefined ? untypedStat() : undefined);
}

async function typeFromFile(state: KvmStatState, file: StatFile): Promise<StatType> {
  const mode = await state.options.fs.mode?.(file.path);
  const type = typeFromMode(file.name, mode);
  if (mode !== undefined && state.modeTypes.size < MODE_CACHE_SIZE) {
    state.modeTypes.set(file.name, type);
  }
  return type;
}

/** The files of one scrape: the root's, then, deep enough, the VMs'. */
async function scrapeFiles(state: KvmStatState, context: ScrapeContext): Promise<ScrapeFiles> {
  const { kvmdebugDir, depth } = state.options;
  const { discovery } = context;
  if (discovery.error !== undefined) {
    throw new Error(describeReadError(kvmdebugDir, discovery.error));
  }
  const root: StatFile[] = [];
  const kept = state.root.files;
  for (const entry of discovery.rootFiles) {
    if (!wanted(state.options, entry.name)) continue;
    let file = kept.get(entry.name);
    if (file === undefined || file.regular !== entry.isFile) {
      file = statFile(entry, { dir: kvmdebugDir, level: "host", vm: undefined });
      // Names come from the kernel's root dir, a fixed set; capped all the same.
      if (kept.size < MODE_CACHE_SIZE) kept.set(entry.name, file);
    }
    root.push(file);
  }
  if (depth < 1) return { root, vms: [] };
  const vms = await listVms(state, context);
  prune(state, discovery.vms);
  return { root, vms };
}

/** The scrape's files in reading order: the root's, then each VM's. */
function allFiles(scrape: ScrapeFiles): StatFile[] {
  const files = scrape.root.slice();
  for (const vm of scrape.vms) for (const file of vm.files) files.push(file);
  return files;
}

/** How a scrape reads: in reader Workers, on the main thread, or all through the async path. */
function readMode(state: KvmStatState, scrape: ScrapeFiles): "workers" | "main" | "async" {
  const { readers } = state.options;
  if (readers === undefined) return "main";
  if (!readers.pool.usable) return "async"; // Too many Workers blocked: nothing is read in sync.
  if (readers.pool.started) return "workers";
  let count = scrape.root.length;
  for (const vm of scrape.vms) count += vm.files.length;
  return count >= readers.minFiles ? "workers" : "main";
}

/**
 * The VM's files that its reader Worker reads (listed regular, never stuck a Worker), the same
 * object while they are the same files; the others go to `others`.
 */
function workerFiles(vm: VmFiles, others: StatFile[]): { files: StatFile[]; paths: string[] } {
  const { listing } = vm;
  const cached = listing.worker;
  const files: StatFile[] = [];
  let same = cached !== undefined;
  for (const file of vm.files) {
    if (!file.regular || (listing.blocking.size > 0 && listing.blocking.has(file.path))) {
      others.push(file);
      continue;
    }
    if (same && cached!.files[files.length] !== file) same = false;
    files.push(file);
  }
  if (same && cached!.files.length === files.length) return cached!;
  listing.worker = { files, paths: files.map((f) => f.path) };
  return listing.worker;
}

/** Rebuilds an error a reader Worker sent by class name, so that it classifies as it would here. */
function workerError(name: string, message: string): Error {
  const classes = Deno.errors as unknown as Record<string, new (message: string) => Error>;
  if (Object.hasOwn(classes, name)) return new classes[name]!(message);
  const error = new Error(message);
  error.name = name;
  return error;
}

/** One scrape's reading: records what fails, adds what parses. */
class ScrapeReader {
  readonly #state: KvmStatState;
  readonly #context: ScrapeContext;
  readonly #out: CollectorOutput;

  constructor(state: KvmStatState, scrape: { context: ScrapeContext; out: CollectorOutput }) {
    this.#state = state;
    this.#context = scrape.context;
    this.#out = scrape.out;
  }

  failed(file: StatFile, error: unknown): void {
    const where = { collector: KVM_STAT, domain: file.domain, path: file.path };
    this.#context.readErrors.record(
      where,
      classifyReadError(error),
      (error as Error).message,
      error,
    );
  }

  accept(file: StatFile, text: string): void | Promise<void> {
    const value = parseStatValue(text);
    if (value === undefined) {
      this.#context.readErrors.record(
        { collector: KVM_STAT, domain: file.domain, path: file.path },
        "malformed",
        // A reader Worker sends the first 40 characters: enough, as a text over 22 is malformed.
        `not one integer: ${JSON.stringify(text.slice(0, 40))}`,
      );
      return;
    }
    return this.#accept(file, value);
  }

  #accept(file: StatFile, value: bigint): void | Promise<void> {
    const type = knownType(this.#state, file.name);
    if (type !== undefined) return this.#add(file, type, value);
    return typeFromFile(this.#state, file).then((t) => this.#add(file, t, value));
  }

  #add(file: StatFile, type: StatType, value: bigint): void {
    this.#out.stats.add({
      level: file.level,
      vm: file.vm,
      vcpu: file.vcpu,
      name: file.name,
      type,
      value,
      source: "debugfs",
    }, file.key);
  }

  /**
   * Reads asynchronously: anything but a listed regular file may block, and so may a path that
   * stuck a reader Worker (`guarded`).
   */
  async readAsync(file: StatFile, guarded: boolean): Promise<void> {
    const context = this.#context;
    const { fs } = this.#state.options;
    if (context.signal.aborted) return;
    const maxBytes = STAT_FILE_MAX_BYTES;
    let text: string;
    try {
      text = file.regular && !guarded
        ? await fs.readTextFile(file.path, { regular: true, maxBytes })
        : await context.reads.read(
          file.path,
          // Non-blocking: a FIFO, socket or device is `not_regular` at once, as the README
          // says, not a read that waits for a writer until the deadline.
          () => fs.readTextFile(file.path, { maxBytes, nonBlocking: true }),
          context.signal,
        );
    } catch (error) {
      if (!(error instanceof DeadlineError)) this.failed(file, error);
      return;
    }
    await this.accept(file, text);
  }

  /**
   * Reads every file: regular ones synchronously, yielding every few milliseconds, unless
   * `guarded`: then every file goes through the guarded async path.
   */
  async readAll(files: readonly StatFile[], guarded = false): Promise<void> {
    const { signal } = this.#context;
    const { limiter } = this.#state;
    const readSync = guarded ? undefined : this.#state.options.fs.readRegularSync;
    const pending: Promise<void>[] = [];
    for (let i = 0; i < files.length; i++) {
      if (i % CLOCK_EVERY === 0 && sliceSpent()) await yieldToEventLoop();
      if (signal.aborted) break;
      const file = files[i]!;
      if (!file.regular || readSync === undefined) {
        pending.push(limiter.run(() => this.readAsync(file, guarded || !file.regular)));
        continue;
      }
      let text: string;
      try {
        text = readSync(file.path, STAT_FILE_MAX_BYTES);
      } catch (error) {
        this.failed(file, error);
        continue;
      }
      const typing = this.accept(file, text);
      if (typing !== undefined) pending.push(typing);
    }
    await Promise.all(pending);
  }

  /**
   * Reads the root's and the VMs' files in the reader Workers; files a Worker must not read go
   * through the guarded async path.
   */
  async readInWorkers(scrape: ScrapeFiles, pool: ReaderPool): Promise<void> {
    const { limiter } = this.#state;
    const others: StatFile[] = [];
    const batches: VmBatch[] = [];
    const batchFiles: StatFile[][] = [];
    const batchListings: VmListing[] = [];
    const root = { key: ROOT_KEY, listing: this.#state.root, files: scrape.root };
    for (const vm of [root, ...scrape.vms]) {
      if (sliceSpent()) await yieldToEventLoop();
      const { files, paths } = workerFiles(vm, others);
      if (files.length === 0) continue;
      batches.push({ key: vm.key, paths });
      batchFiles.push(files);
      batchListings.push(vm.listing);
    }
    const pending = others.map((file) => limiter.run(() => this.readAsync(file, true)));
    const stuck = await pool.read(batches, {
      signal: this.#context.signal,
      onResult: (batch, result) => this.#acceptAll(batchFiles[batch]!, result, pending),
    });
    // The pool stopped meanwhile (too many Workers stuck), or an earlier scrape's read is stuck.
    if (stuck === undefined) {
      pending.push(this.readAll(batchFiles.flat(), true));
    }
    for (const { batch, file, released } of stuck ?? []) {
      this.#stuck(batchListings[batch]!, batchFiles[batch]![file]!, released);
    }
    await Promise.all(pending);
  }

  /** Takes one VM's values from a reader Worker, in file order. */
  #acceptAll(files: readonly StatFile[], result: StatFilesResult, pending: Promise<void>[]): void {
    const { values, side } = result;
    let next = 0;
    for (let i = 0; i < files.length; i++) {
      const value = values[i]!;
      // NaN is the one value not equal to itself: the side list says what the file held.
      const typing = value === value
        ? this.#accept(files[i]!, BigInt(value))
        : side[next]?.index === i
        ? this.#acceptSide(files[i]!, side[next++]!)
        : undefined;
      if (typing !== undefined) pending.push(typing);
    }
  }

  #acceptSide(file: StatFile, entry: SideEntry): void | Promise<void> {
    if (entry.kind === "text") return this.accept(file, entry.text);
    this.failed(
      file,
      entry.kind === "too_large"
        ? tooLarge(file.path, STAT_FILE_MAX_BYTES)
        : workerError(entry.name, entry.message),
    );
  }

  /**
   * A file a reader Worker was stuck on at the deadline: read through the guarded async path from
   * now on, and counted as a blocked read until the abandoned Worker returns.
   */
  #stuck(listing: VmListing, file: StatFile, released: Promise<void>): void {
    listing.blocking.add(file.path);
    // Not counted when too many reads are blocked already; still not read again by a Worker.
    this.#context.reads.markBlocked(file.path, released);
  }
}

/**
 * Creates the debugfs collector. Nothing is held open between scrapes: an
 * open stat file would keep an exited VM's memory alive.
 *
 * @param options Where and what to read.
 * @returns The collector.
 */
export function createKvmStatCollector(options: KvmStatOptions): Collector {
  const state: KvmStatState = {
    options,
    limiter: new Limiter(options.concurrency ?? 32),
    listings: new Map(),
    root: emptyListing(""),
    modeTypes: new Map(),
  };
  return {
    name: KVM_STAT,
    async collect(context: ScrapeContext, out: CollectorOutput): Promise<void> {
      const scrape = await scrapeFiles(state, context);
      const reader = new ScrapeReader(state, { context, out });
      const mode = readMode(state, scrape);
      if (mode === "workers") await reader.readInWorkers(scrape, options.readers!.pool);
      else await reader.readAll(allFiles(scrape), mode === "async");
    },
  };
}
