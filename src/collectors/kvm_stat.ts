/**
 * The `kvm_stat` collector: KVM's debugfs stats, one stat per file, typed by
 * the catalog or, for stats it does not know, by the file's mode. What it
 * reads is {@linkcode StatListing}'s; how, {@linkcode StatReader}'s, by the
 * strategy its options name ({@linkcode StatReads}).
 *
 * @module
 */

import { classifyReadError, type FileSystem } from "../system/file_system.ts";
import { Limiter } from "../system/limiter.ts";
import { ROOT_KEY, type StatFile, StatListing } from "../debugfs/stat_listing.ts";
import { readMode, StatReader, type StatReads, type StatSink } from "../debugfs/stat_reader.ts";
import { StatTyping } from "../debugfs/stat_typing.ts";
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
  /** How stat files are read: synchronously, asynchronously, or in reader Workers. */
  reads: StatReads;
}

/** Files a scrape must read before reader Workers start: below that, their RSS is not worth it. */
export const READER_MIN_FILES = 2000;

/** The name of this collector. */
export const KVM_STAT = "kvm_stat";

/** Where one scrape's reads go: its stats and its read errors. */
function scrapeSink(context: ScrapeContext, out: CollectorOutput): StatSink {
  const where = (file: StatFile) => ({ collector: KVM_STAT, domain: file.domain, path: file.path });
  return {
    value: (file, type, value) =>
      out.stats.add({
        level: file.level,
        vm: file.vm,
        vcpu: file.vcpu,
        name: file.name,
        type,
        value,
        source: "debugfs",
      }, file.key),
    failed: (file, error) =>
      context.readErrors.record(
        where(file),
        classifyReadError(error),
        (error as Error).message,
        error,
      ),
    malformed: (file, text) =>
      context.readErrors.record(
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
      for (const [dir, count] of scrape.vcpuCounts) context.vcpuCounts.set(dir, count);
      if (pool !== undefined && options.depth >= 1) {
        pool.retain(new Set(context.discovery.vms.map((vm) => vm.dir)).add(ROOT_KEY));
      }
      const reader = new StatReader(parts, {
        sink: scrapeSink(context, out),
        reads: context.reads,
        signal: context.signal,
      });
      await reader.read(scrape, { mode: readMode(reads, scrape), pool });
    },
  };
}
