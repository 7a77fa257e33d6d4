/**
 * The `kvm_stat` collector: KVM's debugfs stats, one gauge family per stat
 * file, with the original exporter's names and labels.
 *
 * @module
 */

import { parseStatValue, parseVcpuDirName } from "../debugfs/stat_value.ts";
import { GLOBAL_DOMAIN } from "../discovery/vm_names.ts";
import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { FamilySet, Labels } from "../metrics/model.ts";
import { compatStatFamily } from "../metrics/naming.ts";
import {
  classifyReadError,
  describeReadError,
  type FileSystem,
  listDir,
} from "../system/file_system.ts";
import { STAT_FILE_MAX_BYTES } from "../system/bounded_read.ts";
import { Limiter } from "../system/limiter.ts";
import { DeadlineError } from "../system/read_guard.ts";
import type { Collector, ScrapeContext } from "./collector.ts";

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

interface StatFile {
  path: string;
  /** Listed as a regular file (not a symlink, FIFO, ...). */
  regular: boolean;
  /** `exits` or `vcpu_tsc-offset`: the part between `kvm_stat_` and `_count`. */
  stem: string;
  labels: Labels;
  domain: string | undefined;
}

function statFile(
  entry: Deno.DirEntry,
  where: { dir: string; prefix: string; labels: Labels; domain: string | undefined },
): StatFile {
  return {
    path: `${where.dir}/${entry.name}`,
    regular: entry.isFile,
    stem: `${where.prefix}${entry.name}`,
    labels: where.labels,
    domain: where.domain,
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
    const labels: Labels = [["domain", vm.domain]];
    const files: StatFile[] = [];
    const vcpus: Promise<StatFile[]>[] = [];
    let vcpuCount = 0;
    for (const entry of entries) {
      const vcpu = entry.isDirectory ? parseVcpuDirName(entry.name) : undefined;
      if (vcpu !== undefined) vcpuCount++;
      if (vcpu !== undefined && depth >= 2) vcpus.push(listVcpu(vm, entry.name, vcpu));
      if (!entry.isDirectory && wanted(entry.name)) {
        files.push(statFile(entry, { dir: vm.path, prefix: "", labels, domain: vm.domain }));
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
    const labels: Labels = [["domain", vm.domain], ["vcpu", vcpu]];
    return entries.filter((e) => !e.isDirectory && wanted(e.name))
      .map((e) => statFile(e, { dir: path, prefix: "vcpu_", labels, domain: vm.domain }));
  }

  return {
    name: KVM_STAT,
    async collect(context: ScrapeContext, out: FamilySet): Promise<void> {
      const { discovery, readErrors } = context;
      if (discovery.error !== undefined) {
        throw new Error(describeReadError(kvmdebugDir, discovery.error));
      }
      const labels: Labels = [["domain", GLOBAL_DOMAIN]];
      const files = discovery.rootFiles.filter((e) => wanted(e.name))
        .map((e) => statFile(e, { dir: kvmdebugDir, prefix: "", labels, domain: undefined }));
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
          out.add(
            { ...compatStatFamily(file.stem, kvmdebugDir), type: "gauge" },
            file.labels,
            value,
          );
        })
      ));
    },
  };
}
