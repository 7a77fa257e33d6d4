/**
 * The `kvm_stat` collector: KVM's debugfs stats, one stat per file, typed by
 * the catalog or, for stats it does not know, by the file's mode.
 *
 * @module
 */

import { parseStatValue, parseVcpuDirName } from "../debugfs/stat_value.ts";
import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import { catalogType } from "../stats/catalog.ts";
import { type StatLevel, type StatType, type StatVm, untypedStat } from "../stats/stat.ts";
import { typeFromMode } from "../stats/stat_type.ts";
import {
  classifyReadError,
  describeReadError,
  type FileSystem,
  listDir,
} from "../system/file_system.ts";
import { STAT_FILE_MAX_BYTES } from "../system/bounded_read.ts";
import { Limiter } from "../system/limiter.ts";
import { DeadlineError } from "../system/read_guard.ts";
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
  /** Files read at once. Default 32. */
  concurrency?: number;
}

/** The name of this collector. */
export const KVM_STAT = "kvm_stat";

const MODE_CACHE_SIZE = 1024;

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
}

function statFile(
  entry: Deno.DirEntry,
  where: { dir: string; level: StatLevel; vm: DiscoveredVm | undefined; vcpu?: string },
): StatFile {
  const { vm } = where;
  return {
    path: `${where.dir}/${entry.name}`,
    regular: entry.isFile,
    name: entry.name,
    level: where.level,
    vm: vm === undefined ? undefined : { dir: vm.dir, domain: vm.domain },
    vcpu: where.vcpu,
    domain: vm?.domain,
  };
}

/**
 * Creates the debugfs collector. Nothing is held open between scrapes: an
 * open stat file would keep an exited VM's memory alive.
 *
 * @param options Where and what to read.
 * @returns The collector.
 */
export function createKvmStatCollector(options: KvmStatOptions): Collector {
  const { kvmdebugDir, depth, include, exclude, fs } = options;
  const limiter = new Limiter(options.concurrency ?? 32);
  const wanted = (name: string): boolean =>
    (include === undefined || include.test(name)) && (exclude === undefined || !exclude.test(name));

  async function listVm(vm: DiscoveredVm, vcpuCounts: Map<string, number>): Promise<StatFile[]> {
    let entries: Deno.DirEntry[];
    try {
      entries = await limiter.run(() => listDir(fs, vm.path));
    } catch {
      return []; // The VM exited after discovery listed it: it is simply gone.
    }
    const files: StatFile[] = [];
    const vcpus: Promise<StatFile[]>[] = [];
    let vcpuCount = 0;
    for (const entry of entries) {
      const vcpu = entry.isDirectory ? parseVcpuDirName(entry.name) : undefined;
      if (vcpu !== undefined) vcpuCount++;
      if (vcpu !== undefined && depth >= 2) vcpus.push(listVcpu(vm, entry.name, vcpu));
      if (!entry.isDirectory && wanted(entry.name)) {
        files.push(statFile(entry, { dir: vm.path, level: "vm", vm }));
      }
    }
    vcpuCounts.set(vm.dir, vcpuCount);
    return files.concat(...await Promise.all(vcpus));
  }

  async function listVcpu(vm: DiscoveredVm, dir: string, vcpu: string): Promise<StatFile[]> {
    const path = `${vm.path}/${dir}`;
    let entries: Deno.DirEntry[];
    try {
      entries = await limiter.run(() => listDir(fs, path));
    } catch {
      return [];
    }
    return entries.filter((e) => !e.isDirectory && wanted(e.name))
      .map((e) => statFile(e, { dir: path, level: "vcpu", vm, vcpu }));
  }

  // Only stats the catalog does not know cost a stat() call, once per name: KVM gives a stat the
  // same mode at every level. Names come from the kernel, so the cache stays small; it is capped
  // all the same.
  const modeTypes = new Map<string, StatType>();
  function knownType(name: string): StatType | undefined {
    return catalogType(name) ?? modeTypes.get(name) ??
      (fs.mode === undefined ? untypedStat() : undefined);
  }
  async function typeFromFile(file: StatFile): Promise<StatType> {
    const mode = await fs.mode?.(file.path);
    const type = typeFromMode(file.name, mode);
    if (mode !== undefined && modeTypes.size < MODE_CACHE_SIZE) modeTypes.set(file.name, type);
    return type;
  }

  return {
    name: KVM_STAT,
    async collect(context: ScrapeContext, out: CollectorOutput): Promise<void> {
      const { discovery, readErrors } = context;
      if (discovery.error !== undefined) {
        throw new Error(describeReadError(kvmdebugDir, discovery.error));
      }
      const files = discovery.rootFiles.filter((e) => wanted(e.name))
        .map((e) => statFile(e, { dir: kvmdebugDir, level: "host", vm: undefined }));
      if (depth >= 1) {
        files.push(
          ...(await Promise.all(discovery.vms.map((vm) => listVm(vm, context.vcpuCounts)))).flat(),
        );
      }

      await Promise.all(files.map((file) =>
        limiter.run(async () => {
          if (context.signal.aborted) return;
          const where = { collector: KVM_STAT, domain: file.domain, path: file.path };
          const maxBytes = STAT_FILE_MAX_BYTES;
          let text: string;
          try {
            // Anything but a listed regular file may block: wait for it only until the deadline.
            text = file.regular
              ? await fs.readTextFile(file.path, { regular: true, maxBytes })
              : await context.reads.read(
                file.path,
                () => fs.readTextFile(file.path, { maxBytes }),
                context.signal,
              );
          } catch (error) {
            if (error instanceof DeadlineError) return;
            readErrors.record(where, classifyReadError(error), (error as Error).message, error);
            return;
          }
          const value = parseStatValue(text);
          if (value === undefined) {
            readErrors.record(
              where,
              "malformed",
              `not one integer: ${JSON.stringify(text.slice(0, 40))}`,
            );
            return;
          }
          out.stats.add({
            level: file.level,
            vm: file.vm,
            vcpu: file.vcpu,
            name: file.name,
            // No await on the common path: it would send every read through the event loop.
            type: knownType(file.name) ?? await typeFromFile(file),
            value,
            source: "debugfs",
          });
        })
      ));
    },
  };
}
