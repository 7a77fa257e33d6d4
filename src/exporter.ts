/**
 * One scrape, end to end: discover VMs, run the enabled collectors, add the
 * exporter's own metrics, and name the KVM stats in the chosen scheme. Keeps
 * the last scrape's outcome for the status page.
 *
 * @module
 */

import type { Options } from "./cli/flags.ts";
import { type Collector, type CollectorOutcome, runCollectors } from "./collectors/collector.ts";
import { createKvmStatCollector, KVM_STAT, READER_MIN_FILES } from "./collectors/kvm_stat.ts";
import { createLibvirtCollector, LIBVIRT } from "./collectors/libvirt.ts";
import { createQmpCollector, QMP } from "./collectors/qmp.ts";
import { createVcpuTimeCollector, type VcpuThreadIds } from "./collectors/vcpu_time.ts";
import {
  READ_ERROR_REASONS,
  type ReadErrorCounts,
  ReadErrorLog,
} from "./collectors/read_errors.ts";
import type { ConfigStore } from "./config/config_store.ts";
import type { NameSource } from "./discovery/vm_names.ts";
import {
  CMDLINE_ERROR_REASONS,
  type DiscoveredVm,
  type Discovery,
  VmDiscovery,
} from "./discovery/vm_discovery.ts";
import { VmDirListings } from "./discovery/vm_dir_listings.ts";
import { DomainInfoCache, domainInfoLabels } from "./libvirt/domain_info.ts";
import { ConditionLog } from "./log/condition_log.ts";
import type { Logger } from "./log/logger.ts";
import { FamilySet, type Labels, type MetricFamily } from "./metrics/model.ts";
import { nameStats } from "./naming/naming_scheme.ts";
import type { StatSet } from "./stats/stat.ts";
import { denoFileSystem, type FileSystem, type ReadErrorReason } from "./system/file_system.ts";
import { inferLockdown, type LockdownMode, type LockdownSource } from "./system/lockdown.ts";
import { collectProcessMetrics } from "./system/process_metrics.ts";
import { ReadGuard } from "./system/read_guard.ts";
import { ReaderPool, type StartReader } from "./debugfs/reader_pool.ts";
import { sliceSpent, yieldToEventLoop } from "./system/event_loop_slice.ts";
import type { StatReads } from "./debugfs/stat_reader.ts";
import { HEAP_RELEASE_QUIET_MS } from "./system/idle_heap_release.ts";
import { STAT_FILE_MAX_BYTES } from "./system/bounded_read.ts";
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
  /** Files a scrape must read before reader Workers start. Default {@linkcode READER_MIN_FILES}. */
  readerMinFiles?: number;
  /**
   * How kvm_stat reads stat files; by default `workers` with `--collector.kvm_stat.readers` above
   * 0, else `sync`.
   */
  kvmStatReads?: StatReads["kind"];
  /**
   * Starts a reader Worker. By default a real Worker, which reads through Deno's file API, not
   * `fs`: a file system seam that reader Workers must read through needs its own.
   */
  startReader?: StartReader;
}

/** Options of {@linkcode Exporter.scrape}. */
export interface ScrapeOptions {
  /** The deadline in ms from now; `--web.scrape-timeout` when longer or absent. */
  timeoutMs?: number;
}

/** The scrape pipeline. */
export interface Exporter {
  /**
   * Runs one scrape. Never throws: failures show in the metrics. Answers by
   * its deadline with what was collected; a collector still running then
   * reports success 0.
   */
  scrape(options?: ScrapeOptions): Promise<MetricFamily[]>;
  /** `--web.scrape-timeout` in ms. */
  readonly scrapeTimeoutMs: number;
  /** The last scrape's outcome, if any. */
  readonly lastScrape: ScrapeSnapshot | undefined;
  /** Kernel lockdown mode: from securityfs at start, or inferred from debugfs later. */
  readonly lockdown: LockdownMode;
  /** Where the lockdown mode came from. */
  readonly lockdownSource: LockdownSource;
  /** The vm.yaml in force. */
  readonly configStore: ConfigStore;
  /** Ends the reader Workers, if any started; scrapes after this read the guarded async way. */
  close(): void;
}

/** The `uuid` label and libvirt's names, except where vm.yaml set a label of that name. */
function discoveredLabels(vm: DiscoveredVm, domainInfo: DomainInfoCache): Labels {
  const labels: (readonly [string, string])[] = [];
  if (vm.uuid !== undefined) labels.push(["uuid", vm.uuid]);
  const info = domainInfo.get(vm);
  if (info !== undefined) labels.push(...domainInfoLabels(info));
  const own = vm.entry?.labels ?? {};
  return labels.filter(([name]) => !Object.hasOwn(own, name));
}

/** One series per VM, letting the event loop run every few ms: 20,000 VMs take ~100 ms. */
async function addVmInfo(
  out: FamilySet,
  vms: readonly DiscoveredVm[],
  domainInfo: DomainInfoCache,
): Promise<void> {
  for (const vm of vms) {
    if (sliceSpent()) await yieldToEventLoop();
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
        ...discoveredLabels(vm, domainInfo),
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

/** The VMs whose command line could not be read in this scrape, by reason. */
function addCmdlineReadErrors(out: FamilySet, errors: ReadonlyMap<string, ReadErrorReason>): void {
  const reasons = [...errors.values()];
  for (const reason of CMDLINE_ERROR_REASONS) {
    out.add(
      {
        name: "kvm_exporter_cmdline_read_errors",
        help: "VMs whose VMM command line could not be read in the last scrape (read again on " +
          "the next), by reason.",
        type: "gauge",
      },
      [["reason", reason]],
      reasons.filter((r) => r === reason).length,
    );
  }
}

/** The exporter's health across scrapes: deadlines missed, reads blocked, lockdown. */
function addSafetyState(
  out: FamilySet,
  state: { timeouts: number; blocked: number; lockdown: LockdownMode; source: LockdownSource },
): void {
  out.add(
    {
      name: "kvm_exporter_scrape_timeouts_total",
      help: "Scrapes answered at their deadline with a collector still running.",
      type: "counter",
    },
    [],
    state.timeouts,
  );
  out.add(
    {
      name: "kvm_exporter_blocked_reads",
      help: "Reads still blocked after their scrape's deadline; their paths are not read again.",
      type: "gauge",
    },
    [],
    state.blocked,
  );
  out.add(
    {
      name: "kvm_exporter_kernel_lockdown",
      help: "Kernel lockdown mode, and where it was read (securityfs) or inferred from (debugfs).",
      type: "gauge",
    },
    [["mode", state.lockdown], ["source", state.source]],
    1,
  );
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
 * Whether a VM's stats came from a collector other than debugfs in this scrape (QMP, libvirt):
 * what debugfs refuses for it is then not lost. Looked up only when a refusal is summarized.
 */
function suppliedElsewhere(stats: StatSet): (domain: string) => boolean {
  let domains: Set<string> | undefined;
  return (domain) => {
    domains ??= new Set(
      stats.stats().flatMap((s) => s.source !== "debugfs" && s.vm ? [s.vm.domain] : []),
    );
    return domains.has(domain);
  };
}

/** What {@linkcode createCollectors} wires between collectors. */
interface CollectorDeps {
  fs: FileSystem;
  logger: Logger;
  domainInfo: DomainInfoCache;
  reads: StatReads;
}

/** The enabled collectors, in registry order. */
function createCollectors(options: Options, deps: CollectorDeps): Collector[] {
  const { fs, logger, domainInfo, reads } = deps;
  const collectors: Collector[] = [];
  const qmpThreads: VcpuThreadIds = new Map();
  // Registry order is precedence order for a stat two collectors read: debugfs, QMP, libvirt.
  if (options.kvmStat) {
    collectors.push(createKvmStatCollector({
      kvmdebugDir: options.kvmdebugDir,
      depth: options.depth,
      include: options.filesInclude,
      exclude: options.filesExclude,
      fs,
      reads,
    }));
  }
  if (options.qmp) {
    collectors.push(createQmpCollector({
      timeoutMs: options.qmpTimeoutMs,
      socketGlob: options.qmpSocketGlob,
      procfs: options.procfs,
      fs,
      logger,
      // Only vcpu_time reads them, and it forgets the VMs that went.
      ...(options.vcpuTime ? { vcpuThreads: qmpThreads } : {}),
    }));
  }
  if (options.libvirt) {
    collectors.push(createLibvirtCollector({
      socket: options.libvirtSocket,
      timeoutMs: options.libvirtTimeoutMs,
      domainInfo,
      logger,
    }));
  }
  if (options.vcpuTime) {
    collectors.push(createVcpuTimeCollector({ procfs: options.procfs, fs, qmpThreads }));
  }
  return collectors;
}

/** The pipeline's parts, and what it keeps across scrapes. */
interface ExporterState {
  readonly init: ExporterOptions;
  readonly options: Options;
  readonly fs: FileSystem;
  // One table of reads in flight for discovery and collectors: a blocked path is read by nobody.
  readonly reads: ReadGuard;
  readonly discovery: VmDiscovery;
  readonly collectors: Collector[];
  readonly readerPool: ReaderPool | undefined;
  /** How kvm_stat reads; `async` lists VM dirs asynchronously too. */
  readonly kvmStatReads: StatReads["kind"];
  readonly domainInfo: DomainInfoCache;
  readonly readErrorLog: ReadErrorLog;
  readonly conditions: ConditionLog;
  lastScrape: ScrapeSnapshot | undefined;
  timeouts: number;
  lockdown: LockdownMode;
  lockdownSource: LockdownSource;
}

function createExporterState(init: ExporterOptions): ExporterState {
  const { options, logger } = init;
  const fs = init.fs ?? denoFileSystem;
  const reads = new ReadGuard();
  const discovery = new VmDiscovery({
    kvmdebugDir: options.kvmdebugDir,
    procfs: options.procfs,
    fs,
    logger,
    reads,
  });
  const domainInfo = new DomainInfoCache();
  const kind = init.kvmStatReads ?? (options.kvmStatReaders > 0 ? "workers" : "sync");
  if (kind === "workers" && init.fs !== undefined && init.startReader === undefined) {
    // A Worker reads through Deno's file API: it would read past the seam's faults unseen.
    throw new Error("Reader Workers with a file system seam need a startReader that uses it");
  }
  const readerPool = options.kvmStat && kind === "workers"
    ? new ReaderPool({
      size: Math.max(1, options.kvmStatReaders),
      maxBytes: STAT_FILE_MAX_BYTES,
      collectAfterMs: options.releaseMemoryWhenIdle ? HEAP_RELEASE_QUIET_MS : undefined,
      ...(init.startReader === undefined ? {} : { start: init.startReader }),
    })
    : undefined;
  const statReads: StatReads = readerPool === undefined
    ? { kind: kind === "workers" ? "sync" : kind }
    : { kind, pool: readerPool, minFiles: init.readerMinFiles ?? READER_MIN_FILES };
  const collectors = createCollectors(options, { fs, logger, domainInfo, reads: statReads });
  return {
    init,
    options,
    fs,
    reads,
    discovery,
    collectors,
    readerPool,
    kvmStatReads: kind,
    domainInfo,
    readErrorLog: new ReadErrorLog(logger),
    conditions: new ConditionLog(logger),
    lastScrape: undefined,
    timeouts: 0,
    lockdown: init.lockdown,
    lockdownSource: init.lockdown === "unknown" ? "unknown" : "securityfs",
  };
}

/** Under lockdown with securityfs silent, learns the mode from what debugfs refused. */
async function learnLockdown(state: ExporterState, counts: ReadErrorCounts): Promise<void> {
  if (state.lockdown !== "unknown" || counts.refusedPath === undefined) return;
  const inferred = await inferLockdown({
    refusedPath: counts.refusedPath,
    procfs: state.options.procfs,
  });
  if (inferred === undefined) return;
  state.lockdown = inferred;
  state.lockdownSource = "debugfs";
  state.init.logger.info("Kernel lockdown inferred: debugfs refuses a 0644 file to root", {
    lockdown: state.lockdown,
    path: counts.refusedPath,
  });
}

/** A scrape's deadline: aborted at `timeoutMs`. */
interface ScrapeBudget {
  signal: AbortSignal;
  timeoutMs: number;
}

/** Finds the VMs within a quarter of the scrape's time. */
async function discoverVms(state: ExporterState, deadline: ScrapeBudget): Promise<Discovery> {
  const { signal, timeoutMs } = deadline;
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

/** Forgets logged paths of VMs that are gone; root files and other sources stay. */
function forgetGoneVms(state: ExporterState, vms: readonly DiscoveredVm[]): void {
  const present = new Set(vms.map((vm) => vm.dir));
  const root = `${state.options.kvmdebugDir}/`;
  state.readErrorLog.prune((path) => {
    if (!path.startsWith(root)) return true;
    const rest = path.slice(root.length);
    const slash = rest.indexOf("/");
    return slash === -1 || present.has(rest.slice(0, slash));
  });
}

/** The exporter's own families for this scrape. */
async function ownFamilies(
  state: ExporterState,
  seen: { discovery: Discovery; counts: ReadErrorCounts },
): Promise<FamilySet> {
  const { options, reads } = state;
  const { discovery, counts } = seen;
  const own = new FamilySet();
  await addVmInfo(own, discovery.vms, state.domainInfo);
  if (options.kvmStat) addReadErrors(own, counts.byCollector.get(KVM_STAT));
  addCmdlineReadErrors(own, discovery.cmdlineErrors);
  addSafetyState(own, {
    timeouts: state.timeouts,
    blocked: reads.blocked,
    lockdown: state.lockdown,
    source: state.lockdownSource,
  });
  addConfigState(own, state.init.configStore);
  addBuildInfo(own);
  if (state.init.processMetrics ?? true) await collectProcessMetrics(own, options.procfs);
  return own;
}

/** What one scrape saw of each VM, for the status page. */
interface VmObservations {
  vcpuCounts: ReadonlyMap<string, number>;
  qmpOutcomes: ReadonlyMap<string, string>;
  counts: ReadErrorCounts;
}

function vmStatuses(vms: readonly DiscoveredVm[], seen: VmObservations): VmStatus[] {
  return vms.map((vm) => ({
    domain: vm.domain,
    nameSource: vm.nameSource,
    pid: vm.pid,
    dir: vm.dir,
    vcpus: seen.vcpuCounts.get(vm.dir),
    readErrors: seen.counts.byDomain.get(vm.domain) ?? 0,
    qmp: seen.qmpOutcomes.get(vm.dir),
  }));
}

/** Runs a scrape whose deadline is `deadline.signal`. */
async function scrapeUntil(state: ExporterState, deadline: ScrapeBudget): Promise<MetricFamily[]> {
  const { options, collectors, readErrorLog } = state;
  const { signal } = deadline;
  const found = await discoverVms(state, deadline);
  const readErrors = readErrorLog.begin();
  const vcpuCounts = new Map<string, number>();
  const qmpOutcomes = new Map<string, string>();
  const { stats, families, outcomes } = await runCollectors(collectors, {
    context: {
      discovery: found,
      readErrors,
      vcpuCounts,
      qmpOutcomes,
      signal,
      reads: state.reads,
      vmDirs: new VmDirListings(state.fs, { sync: state.kvmStatReads !== "async" }),
    },
    logger: state.init.logger,
    conditions: state.conditions,
  });
  // Stage by stage on one clock: merging, naming and rendering must not add up in one turn.
  if (sliceSpent()) await yieldToEventLoop();
  if (outcomes.some((o) => o.timedOut)) state.timeouts++;
  readErrorLog.summarize(readErrors.counts, {
    suppliedElsewhere: suppliedElsewhere(stats),
    qmpEnabled: collectors.some((c) => c.name === QMP),
    libvirtEnabled: collectors.some((c) => c.name === LIBVIRT),
  });
  await learnLockdown(state, readErrors.counts);
  if (found.error === undefined) forgetGoneVms(state, found.vms);

  const own = await ownFamilies(state, { discovery: found, counts: readErrors.counts });
  state.lastScrape = {
    at: new Date(),
    collectors: outcomes,
    vms: vmStatuses(found.vms, { vcpuCounts, qmpOutcomes, counts: readErrors.counts }),
  };
  if (sliceSpent()) await yieldToEventLoop();
  return nameStats(stats, [...families, ...own.families()], {
    naming: options.naming,
    kvmdebugDir: options.kvmdebugDir,
    histogramMaxBuckets: options.histogramMaxBuckets,
  });
}

async function scrapeOnce(
  state: ExporterState,
  scrapeOptions: ScrapeOptions = {},
): Promise<MetricFamily[]> {
  const timeoutMs = Math.min(state.options.scrapeTimeoutMs, scrapeOptions.timeoutMs ?? Infinity);
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  try {
    return await scrapeUntil(state, { signal: deadline.signal, timeoutMs });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Builds the scrape pipeline from the flags.
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
      return state.lockdown;
    },
    get lockdownSource() {
      return state.lockdownSource;
    },
    configStore: init.configStore,
    close: () => state.readerPool?.close(),
  };
}
