/**
 * The exporter's own metrics: `kvm_vm_info` for each VM found, what could not
 * be read, the exporter's health across scrapes (deadlines missed, reads
 * blocked, kernel lockdown), vm.yaml's state, build info and the process.
 *
 * @module
 */

import { READ_ERROR_REASONS, type ReadErrorCounts } from "./collectors/read_errors.ts";
import type { MergedObservations } from "./collectors/vm_observations.ts";
import { CMDLINE_ERROR_REASONS, type Discovery } from "./discovery/vm_discovery.ts";
import type { DiscoveredVm } from "./discovery/vm_discovery.ts";
import { domainInfoLabels } from "./libvirt/domain_info.ts";
import { FamilySet, type Labels } from "./metrics/model.ts";
import type { ReadErrorReason } from "./system/file_system.ts";
import type { LockdownMode, LockdownSource } from "./system/lockdown.ts";
import { sliceSpent, yieldToEventLoop } from "./system/event_loop_slice.ts";
import type { ProcessMetrics } from "./system/process_metrics.ts";
import { REVISION, VERSION } from "./version.ts";

/** The `uuid` label and libvirt's names, except where vm.yaml set a label of that name. */
function discoveredLabels(vm: DiscoveredVm, observations: MergedObservations): Labels {
  const labels: (readonly [string, string])[] = [];
  if (vm.uuid !== undefined) labels.push(["uuid", vm.uuid]);
  const identity = observations.get(vm.dir)?.identity;
  if (identity !== undefined) labels.push(...domainInfoLabels(identity));
  const own = vm.entry?.labels ?? {};
  return labels.filter(([name]) => !Object.hasOwn(own, name));
}

/** One series per VM, letting the event loop run every few ms: 20,000 VMs take ~100 ms. */
async function addVmInfo(
  out: FamilySet,
  vms: readonly DiscoveredVm[],
  observations: MergedObservations,
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
        ...discoveredLabels(vm, observations),
        ...Object.entries(vm.entry?.labels ?? {}),
      ],
      1,
    );
  }
}

function addReadErrors(
  out: FamilySet,
  where: { collector: string; counts: ReadonlyMap<string, number> | undefined },
): void {
  out.addByReason({
    name: "kvm_exporter_stat_read_errors",
    help: "Stats that could not be read in the last scrape, by reason.",
    type: "gauge",
  }, {
    reasons: READ_ERROR_REASONS,
    count: (reason) => where.counts?.get(reason) ?? 0,
    labels: [["collector", where.collector]],
  });
}

/** The VMs whose command line could not be read in this scrape, by reason. */
function addCmdlineReadErrors(out: FamilySet, errors: ReadonlyMap<string, ReadErrorReason>): void {
  const reasons = [...errors.values()];
  out.addByReason({
    name: "kvm_exporter_cmdline_read_errors",
    help: "VMs whose VMM command line could not be read in the last scrape (read again on " +
      "the next), by reason.",
    type: "gauge",
  }, {
    reasons: CMDLINE_ERROR_REASONS,
    count: (reason) => reasons.filter((r) => r === reason).length,
  });
}

/** The exporter's health across scrapes: deadlines missed, reads blocked, lockdown. */
export interface SafetyState {
  /** Scrapes answered at their deadline with a collector still running. */
  timeouts: number;
  /** Reads still blocked. */
  blocked: number;
  /** Kernel lockdown mode. */
  lockdown: LockdownMode;
  /** Where the mode came from. */
  source: LockdownSource;
}

function addSafetyState(out: FamilySet, state: SafetyState): void {
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

/** How the last load of vm.yaml went. */
export interface ConfigState {
  /** Whether it succeeded. */
  readonly lastReloadSuccessful: boolean;
  /** When a load last succeeded, in seconds since the epoch. */
  readonly lastSuccessTimestamp: number | undefined;
}

function addConfigState(out: FamilySet, config: ConfigState): void {
  out.add(
    {
      name: "kvm_exporter_config_last_reload_successful",
      help: "Whether the last load of vm.yaml succeeded.",
      type: "gauge",
    },
    [],
    config.lastReloadSuccessful ? 1 : 0,
  );
  const loadedAt = config.lastSuccessTimestamp;
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

/** What {@linkcode exporterFamilies} reports on. */
export interface ExporterSeen {
  /** The scrape's discovery. */
  discovery: Discovery;
  /** What the collectors learned of each VM. */
  observations: MergedObservations;
  /** Stats not read, of the collector that counts them, if it ran. */
  readErrors: { collector: string; counts: ReadErrorCounts } | undefined;
  /** Health across scrapes. */
  safety: SafetyState;
  /** vm.yaml's state. */
  config: ConfigState;
  /** The `process_*` metrics' reader; none without. */
  process: ProcessMetrics | undefined;
}

/**
 * The exporter's own families for one scrape.
 *
 * @param seen What the scrape saw and the exporter's state.
 * @returns The families.
 */
export async function exporterFamilies(seen: ExporterSeen): Promise<FamilySet> {
  const { discovery, readErrors } = seen;
  const own = new FamilySet();
  await addVmInfo(own, discovery.vms, seen.observations);
  if (readErrors !== undefined) {
    addReadErrors(own, {
      collector: readErrors.collector,
      counts: readErrors.counts.byCollector.get(readErrors.collector),
    });
  }
  addCmdlineReadErrors(own, discovery.cmdlineErrors);
  addSafetyState(own, seen.safety);
  addConfigState(own, seen.config);
  addBuildInfo(own);
  if (seen.process !== undefined) await seen.process.collect(own);
  return own;
}
