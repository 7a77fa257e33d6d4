/**
 * What the status page says, made from the last scrape's report, the enabled
 * collectors and vm.yaml's state: per VM its run state, which sources supply
 * its stats and what is missing; the host's lockdown and vm.yaml. Advice to
 * enable a collector is given only for a collector that is off.
 *
 * @module
 */

import { LIBVIRT } from "../collectors/libvirt.ts";
import { QMP } from "../collectors/qmp.ts";
import type { ScrapeReport } from "../collectors/scrape_report.ts";
import { VM_PROCESS } from "../collectors/vm_process.ts";
import type { RunState } from "../metrics/vm_families.ts";
import type { ConfigOrigin } from "../config/config_store.ts";
import type { NameSource } from "../discovery/vm_names.ts";
import type { StatSource } from "../stats/stat.ts";
import type { LockdownMode, LockdownSource } from "../system/lockdown.ts";

/** A source of a VM's stats, as the page names it. */
export type SourceName = "debugfs" | "QMP" | "libvirt" | "process";

/** One source of a VM's stats. */
export interface SourceShare {
  /** The source. */
  source: SourceName;
  /** How many KVM stats it supplied; undefined for a source of other values (process). */
  stats: number | undefined;
}

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
  /** Its run state and why (`paused (io_error)`), or "unknown" when no source reported it. */
  runState: string;
  /** The sources that supplied its stats in the scrape, in registry order. */
  sources: SourceShare[];
  /** Stats of this VM that could not be read in the scrape. */
  readErrors: number;
  /** How its QMP query went ("ok" or the error reason); undefined without a socket. */
  qmp: string | undefined;
  /** What is missing and what to do, or "" when nothing is. */
  note: string;
}

const STAT_SOURCE_NAMES: Readonly<Record<StatSource, SourceName>> = {
  debugfs: "debugfs",
  qmp: "QMP",
  libvirt: "libvirt",
};

/** Collectors whose per-VM outcome "ok" means they supplied the VM's values, though not as KVM stats. */
const OUTCOME_SOURCES: ReadonlyMap<string, SourceName> = new Map([[VM_PROCESS, "process"]]);

/** The collectors that supply what debugfs refuses, with the flag that enables each. */
const FALLBACKS = [[QMP, "--collector.qmp"], [LIBVIRT, "--collector.libvirt"]] as const;

function sourcesOf(report: ScrapeReport, dir: string): SourceShare[] {
  const counts = report.statSources.get(dir);
  const shares: SourceShare[] = (["debugfs", "qmp", "libvirt"] as const)
    .flatMap((s) =>
      (counts?.get(s) ?? 0) > 0 ? [{ source: STAT_SOURCE_NAMES[s], stats: counts?.get(s) }] : []
    );
  const outcomes = report.observations.get(dir)?.outcomes;
  for (const [collector, source] of OUTCOME_SOURCES) {
    if (outcomes?.get(collector) === "ok") shares.push({ source, stats: undefined });
  }
  return shares;
}

/** Why QMP supplied nothing for a VM. */
function qmpNote(outcome: string | undefined): string {
  if (outcome === undefined) return "no QMP socket for it";
  // A monitor that answers with no KVM stats: a VM under TCG, or KVM's stats not compiled in.
  if (outcome === "ok") return "QMP answers with no KVM stats";
  return `QMP: ${outcome}`;
}

/** Why a VM's unreadable stats have no other source, and which collectors to turn on. */
function missingNote(vm: VmStatus, enabled: ReadonlySet<string>): string {
  const parts = [`${vm.readErrors} stats not readable in debugfs`];
  if (enabled.has(QMP)) parts.push(qmpNote(vm.qmp));
  if (enabled.has(LIBVIRT)) parts.push("libvirt has no stats of it");
  const off = FALLBACKS.filter(([name]) => !enabled.has(name)).map(([, flag]) => flag);
  if (off.length > 0) parts.push(`enable ${off.join(" or ")}`);
  return parts.join("; ");
}

/** What a VM's read errors mean, given the sources that supplied its stats. */
function vmNote(vm: VmStatus, enabled: ReadonlySet<string>): string {
  if (vm.readErrors === 0) return "";
  const instead = vm.sources.filter((s) => s.source === "QMP" || s.source === "libvirt");
  if (instead.length === 0) return missingNote(vm, enabled);
  // Under lockdown debugfs refuses the counters and QMP or libvirt has them: nothing is missing.
  return `debugfs refuses ${vm.readErrors}; ${instead.map((s) => s.source).join(" and ")} ${
    instead.length === 1 ? "supplies" : "supply"
  } them`;
}

/** A run state as the page shows it: `paused (io_error)`, or the state alone if that says all. */
function runStateText(run: RunState | undefined): string {
  if (run === undefined) return "unknown";
  // A reason that says nothing more (libvirt's "unknown", or the state's own name) is left out.
  const silent = run.reason === "" || run.reason === "unknown" || run.reason === run.state;
  return silent ? run.state : `${run.state} (${run.reason})`;
}

/**
 * The status page's rows: one per VM the scrape found.
 *
 * @param report The scrape's report.
 * @param enabled The enabled collectors' names.
 * @returns The rows, in discovery order.
 */
export function vmStatuses(report: ScrapeReport, enabled: readonly string[]): VmStatus[] {
  const on = new Set(enabled);
  return report.vms.map((vm) => {
    const seen = report.observations.get(vm.dir);
    const run = seen?.runState;
    const status: VmStatus = {
      domain: vm.domain,
      nameSource: vm.nameSource,
      pid: vm.pid,
      dir: vm.dir,
      vcpus: seen?.vcpus,
      runState: runStateText(run),
      sources: sourcesOf(report, vm.dir),
      readErrors: report.readErrorsByDomain.get(vm.domain) ?? 0,
      qmp: seen?.outcomes.get(QMP),
      note: "",
    };
    status.note = vmNote(status, on);
    return status;
  });
}

/**
 * A VM's sources as one line of text, e.g. `QMP 96, debugfs 12, process`.
 *
 * @param sources The VM's sources.
 * @returns The text; "none" when no source supplied anything.
 */
export function sourcesText(sources: readonly SourceShare[]): string {
  if (sources.length === 0) return "none";
  return [...sources].sort((a, b) => (b.stats ?? -1) - (a.stats ?? -1))
    .map((s) => s.stats === undefined ? s.source : `${s.source} ${s.stats}`).join(", ");
}

const LOCKDOWN_NOTES: Record<LockdownMode, string> = {
  none: "off: every debugfs stat can be read",
  integrity:
    "integrity: debugfs hides cumulative, peak and histogram stats; instant stats and vCPU files still work",
  confidentiality:
    "confidentiality: debugfs hides cumulative, peak and histogram stats; instant stats and vCPU files still work",
  unknown: "unknown (/sys/kernel/security/lockdown not readable)",
};

/**
 * The kernel lockdown line: the mode, what it hides, and where the hidden stats come from (or
 * which collectors to enable, when none that could supply them is on).
 *
 * @param lockdown The mode, where it came from, and the enabled collectors' names.
 * @returns The text, without markup.
 */
export function lockdownNote(
  lockdown: { mode: LockdownMode; source: LockdownSource | undefined; enabled: readonly string[] },
): string {
  const { mode, source, enabled } = lockdown;
  let note = LOCKDOWN_NOTES[mode];
  if (mode === "integrity" || mode === "confidentiality") {
    const on = FALLBACKS.filter(([name]) => enabled.includes(name));
    note += on.length > 0
      ? `; the ${on.map(([name]) => name).join(" and ")} collector${
        on.length > 1 ? "s supply" : " supplies"
      } the rest`
      : `; enable ${FALLBACKS.map(([, flag]) => flag).join(" or ")} for the rest`;
  }
  if (source !== "debugfs") return note;
  // securityfs was silent: the mode was inferred, and "integrity" may be confidentiality.
  const [name, rest] = note.split(/:(.*)/s);
  return `${name} (inferred from EPERM on debugfs):${rest ?? ""}`;
}

/** vm.yaml's state, as {@linkcode configNote} reads it. */
export interface ConfigState {
  /** Whether the last load or reload succeeded. */
  ok: boolean;
  /** Where the config in force came from; undefined before the first good load. */
  origin: ConfigOrigin | undefined;
  /** vm.yaml's path. */
  path: string;
}

/**
 * The vm.yaml line: loaded from a file, no file, a file not readable, or a rejected reload.
 *
 * @param config vm.yaml's state.
 * @returns The text, and whether it is a problem to show as one.
 */
export function configNote(config: ConfigState): { text: string; problem: boolean } {
  const path = JSON.stringify(config.path);
  if (!config.ok) {
    return {
      text: `last reload of ${path} failed; the config before it is in force`,
      problem: true,
    };
  }
  switch (config.origin) {
    case "file":
      return { text: `loaded from ${path}`, problem: false };
    case "absent":
      return { text: `none at ${path}: VMs are named from their command lines`, problem: false };
    case "not_readable":
      return {
        text: `not read (no read permission for ${path}): VMs are named from their command lines`,
        problem: false,
      };
    case undefined:
      return { text: "not loaded yet", problem: false };
  }
}
