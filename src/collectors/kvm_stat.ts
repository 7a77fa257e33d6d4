/**
 * The `kvm_stat` collector: KVM's debugfs stats, one stat per file, typed by
 * the catalog or, for stats it does not know, by the file's mode. What it
 * reads is {@linkcode StatListing}'s; how, {@linkcode StatReader}'s, by the
 * strategy its options name ({@linkcode StatReads}).
 *
 * @module
 */

import { classifyReadError, denoFileSystem, type FileSystem } from "../system/file_system.ts";
import { flag, type FlagValues, intInRange, regexpValue } from "../cli/flag.ts";
import { HEAP_RELEASE_QUIET_MS } from "../system/idle_heap_release.ts";
import { STAT_FILE_MAX_BYTES } from "../system/bounded_read.ts";
import { ReaderPool } from "../debugfs/reader_pool.ts";
import { Limiter } from "../system/limiter.ts";
import { ROOT_KEY, type StatFile, StatListing } from "../debugfs/stat_listing.ts";
import { readMode, StatReader, type StatReads, type StatSink } from "../debugfs/stat_reader.ts";
import { StatTyping } from "../debugfs/stat_typing.ts";
import type { Collector, CollectorOutput, ScrapeContext } from "./collector.ts";
import { type CollectorServices, declareCollector } from "./collector_declaration.ts";

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
  /** How stat files are read: synchronously, asynchronously, or in reader Workers. */
  reads: StatReads;
}

/** Files a scrape must read before reader Workers start: below that, their RSS is not worth it. */
export const READER_MIN_FILES = 2000;

/** The name of this collector. */
export const KVM_STAT = "kvm_stat";

/** Where one scrape's reads go: its stats and its read errors. */
function scrapeSink(out: CollectorOutput): StatSink {
  const where = (file: StatFile) => ({ collector: KVM_STAT, domain: file.domain, path: file.path });
  return {
    value: (file, type, value) => {
      out.stats.add({
        level: file.level,
        vm: file.vm,
        vcpu: file.vcpu,
        name: file.name,
        type,
        value,
        source: "debugfs",
      }, file.key);
    },
    failed: (file, error, detail) =>
      out.readErrors.record(
        where(file),
        classifyReadError(error),
        detail ?? (error as Error).message,
        error,
      ),
    malformed: (file, text) =>
      out.readErrors.record(
        where(file),
        "malformed",
        `not one integer: ${JSON.stringify(text)}`,
      ),
  };
}

/**
 * Creates the debugfs collector. Nothing is held open between scrapes: an
 * open stat file would keep an exited VM's memory alive.
 *
 * @param options Where and what to read, and how.
 * @returns The collector.
 */
export function createKvmStatCollector(options: KvmStatOptions): Collector {
  const { fs, reads } = options;
  const limiter = new Limiter(options.concurrency ?? 32);
  const listing = new StatListing({ ...options, limiter, sync: reads.kind !== "async" });
  const parts = { fs, limiter, typing: new StatTyping(fs) };
  const pool = reads.kind === "workers" ? reads.pool : undefined;
  return {
    name: KVM_STAT,
    async collect(context: ScrapeContext, out: CollectorOutput): Promise<void> {
      const scrape = await listing.files(context);
      for (const [dir, count] of scrape.vcpuCounts) out.observations.observe(dir, { vcpus: count });
      if (pool !== undefined && options.depth >= 1) {
        pool.retain(new Set(context.discovery.vms.map((vm) => vm.dir)).add(ROOT_KEY));
      }
      const reader = new StatReader(parts, {
        sink: scrapeSink(out),
        reads: context.reads,
        signal: context.signal,
      });
      await reader.read(scrape, { mode: readMode(reads, scrape), pool });
    },
  };
}

/** The most reader Workers `--collector.kvm_stat.readers` may ask for. */
export const MAX_READERS = 64;

/**
 * The default of `--collector.kvm_stat.readers`: one Worker per core, at most 4 (measured on 2
 * cores: 2 Workers read 16k files in half the time of one thread, a third was no faster).
 *
 * @returns The number of reader Workers.
 */
export function defaultReaders(): number {
  return Math.min(4, navigator.hardwareConcurrency);
}

/** The kvm_stat collector's own flags. */
const KVM_STAT_FLAGS = {
  depth: flag({
    name: "collector.dir.depth",
    type: "int",
    default: 2,
    help: "KVM Debug Stat Depth",
    convert: intInRange({ min: 0 }),
  }),
  exclude: flag({
    name: "collector.kvm_stat.files-exclude",
    type: "string",
    default: "^mmu_rmaps_stat$",
    help: "Regexp of stat file names not to read",
    convert: regexpValue,
  }),
  include: flag({
    name: "collector.kvm_stat.files-include",
    type: "string",
    help: "Regexp of stat file names to read (default: all)",
    convert: regexpValue,
  }),
  readers: flag({
    name: "collector.kvm_stat.readers",
    type: "int",
    help: "Worker threads reading stat files on large hosts (default: min(4, cores); 0: none)",
    convert: (n: number | undefined, where: string) =>
      intInRange({ min: 0, max: MAX_READERS })(n ?? defaultReaders(), where),
  }),
};

/** Creates the collector and, on the real file system with readers asked for, its Workers. */
function createFromFlags(
  values: FlagValues<typeof KVM_STAT_FLAGS>,
  services: CollectorServices,
): Collector {
  const { readers, ...what } = values;
  const { fs, startReader } = services;
  const kind = services.kvmStatReads ?? (readers > 0 ? "workers" : "sync");
  if (kind === "workers" && fs !== denoFileSystem && startReader === undefined) {
    // A Worker reads through Deno's file API: it would read past the seam's faults unseen.
    throw new Error("Reader Workers with a file system seam need a startReader that uses it");
  }
  const pool = kind === "workers"
    ? new ReaderPool({
      size: Math.max(1, readers),
      maxBytes: STAT_FILE_MAX_BYTES,
      collectAfterMs: services.releaseMemoryWhenIdle ? HEAP_RELEASE_QUIET_MS : undefined,
      ...(startReader === undefined ? {} : { start: startReader }),
    })
    : undefined;
  const reads: StatReads = pool === undefined
    ? { kind: kind === "workers" ? "sync" : kind }
    : { kind: "workers", pool, minFiles: services.readerMinFiles ?? READER_MIN_FILES };
  const collector = createKvmStatCollector({
    ...what,
    kvmdebugDir: services.kvmdebugDir,
    fs,
    reads,
  });
  return { ...collector, close: () => pool?.close() };
}

/** The kvm_stat collector's declaration: debugfs, on by default, first in precedence. */
export const KVM_STAT_COLLECTOR = declareCollector({
  name: KVM_STAT,
  defaultEnabled: true,
  flags: KVM_STAT_FLAGS,
  create: createFromFlags,
});
