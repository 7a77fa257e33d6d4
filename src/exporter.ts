/**
 * One scrape, end to end: discover VMs, run the enabled collectors of the
 * registry, add the exporter's own metrics, and name the KVM stats in the
 * chosen scheme. Keeps the last scrape's report for the status page.
 *
 * @module
 */

import type { FlagValues } from "./cli/flag.ts";
import { type Collector, type CollectorsResult, runCollectors } from "./collectors/collector.ts";
import type { ConfiguredCollector } from "./collectors/collector_declaration.ts";
import { KVM_STAT } from "./collectors/kvm_stat.ts";
import { LIBVIRT } from "./collectors/libvirt.ts";
import { QMP } from "./collectors/qmp.ts";
import {
  pathOfPresentVm,
  type ReadErrorCounts,
  ReadErrorLog,
  suppliedElsewhere,
} from "./collectors/read_errors.ts";
import { type ScrapeReport, statSourcesByVm } from "./collectors/scrape_report.ts";
import type { VmObservations } from "./collectors/vm_observations.ts";
import type { ConfigStore } from "./config/config_store.ts";
import { type Discovery, VmDiscovery } from "./discovery/vm_discovery.ts";
import { VmDirListings } from "./discovery/vm_dir_listings.ts";
import type { EXPORTER_FLAGS } from "./exporter_flags.ts";
import { exporterFamilies } from "./exporter_metrics.ts";
import type { MetricsSource } from "./http/metrics_source.ts";
import { ConditionLog } from "./log/condition_log.ts";
import type { Logger } from "./log/logger.ts";
import type { MetricFamily } from "./metrics/model.ts";
import { nameStats } from "./naming/naming_scheme.ts";
import { denoFileSystem, type FileSystem } from "./system/file_system.ts";
import { KernelLockdown, type LockdownMode } from "./system/lockdown.ts";
import { ProcessMetrics } from "./system/process_metrics.ts";
import { ReadGuard } from "./system/read_guard.ts";
import type { StartReader } from "./debugfs/reader_pool.ts";
import type { StatReads } from "./debugfs/stat_reader.ts";
import { beginSlice, sliceSpent, yieldToEventLoop } from "./system/event_loop_slice.ts";

/** The flags the pipeline reads: its own, the scrape deadline, and the configured collectors. */
export type ExporterSettings = FlagValues<typeof EXPORTER_FLAGS> & {
  /** A scrape's deadline in ms. */
  readonly scrapeTimeoutMs: number;
  /** Every collector of the registry, configured, in registry order. */
  readonly collectors: readonly ConfiguredCollector[];
};

/** Options of {@linkcode createExporter}. */
export interface ExporterOptions {
  /** The parsed flags. */
  options: ExporterSettings;
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
  /** Files a scrape must read before kvm_stat's reader Workers start; its default if absent. */
  readerMinFiles?: number;
  /** How kvm_stat reads ({@linkcode CollectorServices.kvmStatReads}). */
  kvmStatReads?: StatReads["kind"];
  /** Starts a kvm_stat reader ({@linkcode CollectorServices.startReader}). */
  startReader?: StartReader;
}

/** The scrape pipeline: what the HTTP app serves from, and a way to end it. */
export interface Exporter extends MetricsSource {
  /** The vm.yaml in force. */
  readonly configStore: ConfigStore;
  /** Ends what collectors hold (reader Workers, sockets); called once, when the exporter stops. */
  close(): void;
}

/** The pipeline's parts, and what it keeps across scrapes. */
interface ExporterState {
  readonly init: ExporterOptions;
  readonly options: ExporterSettings;
  readonly fs: FileSystem;
  // One table of reads in flight for discovery and collectors: a blocked path is read by nobody.
  readonly reads: ReadGuard;
  readonly discovery: VmDiscovery;
  readonly collectors: Collector[];
  /** The collectors each collector observes, as the registry declares. */
  readonly observes: ReadonlyMap<string, readonly string[]>;
  readonly readErrorLog: ReadErrorLog;
  readonly conditions: ConditionLog;
  /** What each collector learned in the last scrape. */
  lastObservations: ReadonlyMap<string, VmObservations> | undefined;
  lastScrape: ScrapeReport | undefined;
  timeouts: number;
  readonly lockdown: KernelLockdown;
  /** The `process_*` metrics' reader, which keeps `<procfs>/self/stat` open; none when off. */
  readonly process: ProcessMetrics | undefined;
}

function createExporterState(init: ExporterOptions): ExporterState {
  const { options, logger } = init;
  const fs = init.fs ?? denoFileSystem;
  const reads = new ReadGuard();
  const { kvmdebugDir, procfs, releaseMemoryWhenIdle } = options;
  const discovery = new VmDiscovery({ kvmdebugDir, procfs, fs, logger, reads });
  const enabled = options.collectors.filter((c) => c.enabled);
  const services = {
    fs,
    logger,
    kvmdebugDir,
    procfs,
    releaseMemoryWhenIdle,
    ...(init.readerMinFiles === undefined ? {} : { readerMinFiles: init.readerMinFiles }),
    ...(init.kvmStatReads === undefined ? {} : { kvmStatReads: init.kvmStatReads }),
    ...(init.startReader === undefined ? {} : { startReader: init.startReader }),
  };
  return {
    init,
    options,
    fs,
    reads,
    discovery,
    collectors: enabled.map((c) => c.create(services)),
    observes: new Map(enabled.map((c) => [c.name, c.observes])),
    readErrorLog: new ReadErrorLog(logger),
    conditions: new ConditionLog(logger),
    lastObservations: undefined,
    lastScrape: undefined,
    timeouts: 0,
    lockdown: new KernelLockdown(init.lockdown),
    process: init.processMetrics ?? true ? new ProcessMetrics(options.procfs) : undefined,
  };
}

/** A scrape's deadline: aborted at `timeoutMs`. */
interface ScrapeBudget {
  signal: AbortSignal;
  timeoutMs: number;
}

/** Finds the VMs within a quarter of the scrape's time. */
async function discoverVms(state: ExporterState, budget: ScrapeBudget): Promise<Discovery> {
  const { signal, timeoutMs } = budget;
  // Discovery gets a quarter of the time: a VMM's command line that blocks must leave the
  // collectors theirs.
  const discoveryDeadline = new AbortController();
  const discoveryTimer = setTimeout(() => discoveryDeadline.abort(), timeoutMs / 4);
  try {
    return await state.discovery.discover(
      state.init.configStore.config,
      state.options.vmmapOnlyListed,
      AbortSignal.any([signal, discoveryDeadline.signal]),
    );
  } finally {
    clearTimeout(discoveryTimer);
  }
}

/** Logs what could not be read, and learns the lockdown mode from it. */
async function afterCollecting(
  state: ExporterState,
  scrape: { found: Discovery; result: CollectorsResult; counts: ReadErrorCounts },
): Promise<void> {
  const { found, result, counts } = scrape;
  const running = (name: string): boolean => state.collectors.some((c) => c.name === name);
  if (result.outcomes.some((o) => o.timedOut)) state.timeouts++;
  state.readErrorLog.summarize(counts, {
    suppliedElsewhere: suppliedElsewhere(result.stats),
    qmpEnabled: running(QMP),
    libvirtEnabled: running(LIBVIRT),
  });
  const { refusedPath } = counts;
  if (await state.lockdown.learn({ refusedPath, procfs: state.options.procfs })) {
    state.init.logger.info("Kernel lockdown inferred: debugfs refuses a 0644 file to root", {
      lockdown: state.lockdown.mode,
      path: refusedPath,
    });
  }
  if (found.error === undefined) {
    state.readErrorLog.prune(pathOfPresentVm(state.options.kvmdebugDir, found.vms));
  }
  state.lastObservations = result.byCollector;
}

/** Runs a scrape whose deadline is `budget.signal`. */
async function scrapeUntil(state: ExporterState, budget: ScrapeBudget): Promise<MetricFamily[]> {
  const { options, collectors } = state;
  const found = await discoverVms(state, budget);
  const result = await runCollectors(collectors, {
    context: {
      discovery: found,
      signal: budget.signal,
      reads: state.reads,
      // The `async` strategy reads nothing synchronously on the main thread, VM dirs included.
      vmDirs: new VmDirListings(state.fs, { sync: state.init.kvmStatReads !== "async" }),
    },
    observes: state.observes,
    ...(state.lastObservations === undefined ? {} : { last: state.lastObservations }),
    logger: state.init.logger,
    readErrorLog: state.readErrorLog,
    conditions: state.conditions,
  });
  // Stage by stage on one clock: merging, naming and rendering must not add up in one turn.
  if (sliceSpent()) await yieldToEventLoop();
  const counts = result.readErrors;
  await afterCollecting(state, { found, result, counts });
  const own = await exporterFamilies({
    discovery: found,
    observations: result.observations,
    readErrors: collectors.some((c) => c.name === KVM_STAT)
      ? { collector: KVM_STAT, counts }
      : undefined,
    safety: {
      timeouts: state.timeouts,
      blocked: state.reads.blocked,
      lockdown: state.lockdown.mode,
      source: state.lockdown.source,
    },
    config: state.init.configStore,
    process: state.process,
  });
  state.lastScrape = {
    at: new Date(),
    collectors: result.outcomes,
    vms: found.vms,
    observations: result.observations,
    readErrorsByDomain: counts.byDomain,
    statSources: statSourcesByVm(result.stats),
  };
  if (sliceSpent()) await yieldToEventLoop();
  return nameStats(result.stats, [...result.families, ...own.families()], {
    naming: options.naming,
    kvmdebugDir: options.kvmdebugDir,
    histogramMaxBuckets: options.histogramMaxBuckets,
  });
}

async function scrapeOnce(
  state: ExporterState,
  scrapeOptions: { timeoutMs?: number } = {},
): Promise<MetricFamily[]> {
  const timeoutMs = Math.min(state.options.scrapeTimeoutMs, scrapeOptions.timeoutMs ?? Infinity);
  beginSlice();
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  try {
    return await scrapeUntil(state, { signal: deadline.signal, timeoutMs });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Builds the scrape pipeline from the flags: the enabled collectors of the
 * registry, created with the services they share.
 *
 * @param init The flags, the config store, a logger and the lockdown mode.
 * @returns The exporter.
 */
export function createExporter(init: ExporterOptions): Exporter {
  const state = createExporterState(init);
  return {
    scrape: (scrapeOptions) => scrapeOnce(state, scrapeOptions),
    scrapeTimeoutMs: init.options.scrapeTimeoutMs,
    get lastScrape() {
      return state.lastScrape;
    },
    get lockdown() {
      return state.lockdown.mode;
    },
    get lockdownSource() {
      return state.lockdown.source;
    },
    collectors: state.collectors.map((c) => c.name),
    configStore: init.configStore,
    close: () => {
      state.collectors.forEach((c) => c.close?.());
      state.process?.close();
    },
  };
}
