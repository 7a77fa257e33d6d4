/**
 * One scrape, end to end: discover VMs, run the enabled collectors, add the
 * exporter's own metrics, and name the KVM stats in the chosen scheme. Keeps
 * the last scrape's outcome for the status page.
 *
 * @module
 */

import type { Options } from "./cli/flags.ts";
import { type Collector, type CollectorOutcome, runCollectors } from "./collectors/collector.ts";
import { createKvmStatCollector, KVM_STAT } from "./collectors/kvm_stat.ts";
import { createQmpCollector } from "./collectors/qmp.ts";
import { READ_ERROR_REASONS, ReadErrorLog } from "./collectors/read_errors.ts";
import type { ConfigStore } from "./config/config_store.ts";
import type { NameSource } from "./discovery/vm_names.ts";
import { type DiscoveredVm, VmDiscovery } from "./discovery/vm_discovery.ts";
import type { Logger } from "./log/logger.ts";
import { FamilySet, type MetricFamily } from "./metrics/model.ts";
import { nameStats } from "./naming/naming_scheme.ts";
import { denoFileSystem, type FileSystem } from "./system/file_system.ts";
import type { LockdownMode } from "./system/lockdown.ts";
import { collectProcessMetrics } from "./system/process_metrics.ts";
import { REVISION, VERSION } from "./version.ts";

/** A VM as the status page shows it. */
export interface VmStatus {
  /** The `domain` label. */
  domain: string;
  /** Where the name came from. */
  nameSource: NameSource;
  /** The VMM's pid. */
  pid: number;
  /** The `PID-FD` dir. */
  dir: string;
  /** vCPUs seen, if a collector listed them. */
  vcpus: number | undefined;
  /** Stats of this VM that could not be read in the scrape. */
  readErrors: number;
  /** How its QMP query went ("ok" or the error reason); undefined without a socket. */
  qmp: string | undefined;
}

/** What the last scrape saw. */
export interface ScrapeSnapshot {
  /** When it ended. */
  at: Date;
  /** Each collector's outcome. */
  collectors: CollectorOutcome[];
  /** The VMs found. */
  vms: VmStatus[];
}

/** Options of {@linkcode createExporter}. */
export interface ExporterOptions {
  /** The parsed flags. */
  options: Options;
  /** The vm.yaml in force. */
  configStore: ConfigStore;
  /** Logger. */
  logger: Logger;
  /** Kernel lockdown mode, read once at start. */
  lockdown: LockdownMode;
  /** File access; the real file system by default. */
  fs?: FileSystem;
  /** Whether to add the `process_*` metrics. Default true. */
  processMetrics?: boolean;
}

/** The scrape pipeline. */
export interface Exporter {
  /** Runs one scrape. Never throws: failures show in the metrics. */
  scrape(): Promise<MetricFamily[]>;
  /** The last scrape's outcome, if any. */
  readonly lastScrape: ScrapeSnapshot | undefined;
  /** Kernel lockdown mode. */
  readonly lockdown: LockdownMode;
  /** The vm.yaml in force. */
  readonly configStore: ConfigStore;
}

function addVmInfo(out: FamilySet, vms: readonly DiscoveredVm[]): void {
  for (const vm of vms) {
    out.add(
      {
        name: "kvm_vm_info",
        help: "Information about each VM found; join on domain with group_left.",
        type: "gauge",
      },
      [
        ["domain", vm.domain],
        ["pid", String(vm.pid)],
        ["kvm_debug_dir", vm.dir],
        ["name_source", vm.nameSource],
        ...Object.entries(vm.entry?.labels ?? {}),
      ],
      1,
    );
  }
}

function addReadErrors(out: FamilySet, counts: ReadonlyMap<string, number> | undefined): void {
  for (const reason of READ_ERROR_REASONS) {
    out.add(
      {
        name: "kvm_exporter_stat_read_errors",
        help: "Stats that could not be read in the last scrape, by reason.",
        type: "gauge",
      },
      [["collector", KVM_STAT], ["reason", reason]],
      counts?.get(reason) ?? 0,
    );
  }
}

function addConfigState(out: FamilySet, configStore: ConfigStore): void {
  out.add(
    {
      name: "kvm_exporter_config_last_reload_successful",
      help: "Whether the last load of vm.yaml succeeded.",
      type: "gauge",
    },
    [],
    configStore.lastReloadSuccessful ? 1 : 0,
  );
  const loadedAt = configStore.lastSuccessTimestamp;
  if (loadedAt === undefined) return;
  out.add(
    {
      name: "kvm_exporter_config_last_reload_success_timestamp_seconds",
      help: "When vm.yaml was last loaded successfully, in seconds since the epoch.",
      type: "gauge",
    },
    [],
    loadedAt,
  );
}

function addBuildInfo(out: FamilySet): void {
  out.add(
    {
      name: "kvm_exporter_build_info",
      help: "A metric with a constant '1' value labeled by version, revision and deno_version.",
      type: "gauge",
    },
    [["version", VERSION], ["revision", REVISION], ["deno_version", Deno.version.deno]],
    1,
  );
}

/**
 * Builds the scrape pipeline from the flags.
 *
 * @param init The flags, the config store, a logger and the lockdown mode.
 * @returns The exporter.
 */
export function createExporter(init: ExporterOptions): Exporter {
  const { options, configStore, logger } = init;
  const fs = init.fs ?? denoFileSystem;
  const discovery = new VmDiscovery({
    kvmdebugDir: options.kvmdebugDir,
    procfs: options.procfs,
    fs,
    logger,
  });
  const collectors: Collector[] = [];
  if (options.kvmStat) {
    collectors.push(createKvmStatCollector({
      kvmdebugDir: options.kvmdebugDir,
      depth: options.depth,
      include: options.filesInclude,
      exclude: options.filesExclude,
      fs,
    }));
  }
  if (options.qmp) {
    collectors.push(createQmpCollector({
      timeoutMs: options.qmpTimeoutMs,
      socketGlob: options.qmpSocketGlob,
      procfs: options.procfs,
      fs,
      logger,
    }));
  }
  const readErrorLog = new ReadErrorLog(logger);
  let lastScrape: ScrapeSnapshot | undefined;

  async function scrape(): Promise<MetricFamily[]> {
    const found = await discovery.discover(configStore.config, options.vmmapOnlyListed);
    const readErrors = readErrorLog.begin();
    const vcpuCounts = new Map<string, number>();
    const qmpOutcomes = new Map<string, string>();
    const { stats, families, outcomes } = await runCollectors(collectors, {
      context: { discovery: found, readErrors, vcpuCounts, qmpOutcomes },
      logger,
    });
    if (found.error === undefined) {
      // Forget logged paths of VMs that are gone; root files and other sources stay.
      const present = new Set(found.vms.map((vm) => vm.dir));
      const root = `${options.kvmdebugDir}/`;
      readErrorLog.prune((path) => {
        if (!path.startsWith(root)) return true;
        const rest = path.slice(root.length);
        const slash = rest.indexOf("/");
        return slash === -1 || present.has(rest.slice(0, slash));
      });
    }

    const own = new FamilySet();
    addVmInfo(own, found.vms);
    if (options.kvmStat) addReadErrors(own, readErrors.counts.byCollector.get(KVM_STAT));
    addConfigState(own, configStore);
    addBuildInfo(own);
    if (init.processMetrics ?? true) await collectProcessMetrics(own, options.procfs);

    lastScrape = {
      at: new Date(),
      collectors: outcomes,
      vms: found.vms.map((vm) => ({
        domain: vm.domain,
        nameSource: vm.nameSource,
        pid: vm.pid,
        dir: vm.dir,
        vcpus: vcpuCounts.get(vm.dir),
        readErrors: readErrors.counts.byDomain.get(vm.domain) ?? 0,
        qmp: qmpOutcomes.get(vm.dir),
      })),
    };
    return nameStats(stats.stats(), [...families, ...own.families()], {
      naming: options.naming,
      kvmdebugDir: options.kvmdebugDir,
      histogramMaxBuckets: options.histogramMaxBuckets,
    });
  }

  return {
    scrape,
    get lastScrape() {
      return lastScrape;
    },
    lockdown: init.lockdown,
    configStore,
  };
}
