/**
 * Counts the stats a scrape could not read, by reason and by VM. Stats the
 * kernel refuses (lockdown) are summed up in one warning per collector, and
 * each path is logged at debug: under lockdown a host with 100 VMs would
 * otherwise log thousands of lines. Other unreadable paths (malformed, too
 * large, not a regular file, blocked) are logged once each at warn.
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { Logger } from "../log/logger.ts";
import type { StatSet } from "../stats/stat.ts";
import type { ReadErrorReason } from "../system/file_system.ts";

/** The reasons, in the order the metric lists them. */
export const READ_ERROR_REASONS: readonly ReadErrorReason[] = [
  "permission",
  "vanished",
  "malformed",
  "too_large",
  "not_regular",
  "blocked",
  "other",
];

/** The read errors of one scrape. */
export interface ReadErrorCounts {
  /** Errors by collector, then by reason. */
  byCollector: Map<string, Map<ReadErrorReason, number>>;
  /** Errors by VM domain. */
  byDomain: Map<string, number>;
  /** Stats the kernel refused, by collector, then by VM domain ("" for the host totals). */
  refused: Map<string, Map<string, number>>;
  /** A path the kernel refused, if any (to infer lockdown from). */
  refusedPath: string | undefined;
}

/** What {@linkcode ReadErrorLog.summarize} needs to know about one scrape. */
export interface RefusalContext {
  /** Whether another enabled collector supplied a VM's stats in this scrape. */
  suppliedElsewhere: (domain: string) => boolean;
  /** Whether the QMP collector is enabled (to say what to do). */
  qmpEnabled: boolean;
  /** Whether the libvirt collector is enabled (to say what to do). */
  libvirtEnabled: boolean;
}

/** Remembers which paths were already logged at warn, across scrapes. */
export class ReadErrorLog {
  #warned = new Set<string>();
  /** Collectors whose refused stats were summed up in a log line already. */
  #summarized = new Set<string>();
  #logger: Logger;

  /**
   * Creates an empty log.
   *
   * @param logger Where the lines go.
   */
  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Starts counting for one scrape.
   *
   * @returns A recorder and the counts it fills.
   */
  begin(): ReadErrorRecorder {
    return new ReadErrorRecorder(this.#logger, this.#warned);
  }

  /**
   * Forgets paths under dirs that are gone, so the set does not grow as VMs come and go.
   *
   * @param keep Whether a path should still be remembered.
   */
  prune(keep: (path: string) => boolean): void {
    for (const path of this.#warned) if (!keep(path)) this.#warned.delete(path);
  }

  /**
   * Logs, once per collector, how many stats per VM and host totals the kernel
   * refuses: at warn for stats no other enabled collector supplies, at info
   * when every VM's come from elsewhere (QMP, libvirt).
   *
   * @param counts The scrape's read errors.
   * @param context What else supplied the stats.
   */
  summarize(counts: ReadErrorCounts, context: RefusalContext): void {
    for (const [collector, byDomain] of counts.refused) {
      if (this.#summarized.has(collector)) continue;
      this.#summarized.add(collector);
      let perVm = 0;
      let perVmElsewhere = 0;
      for (const [domain, n] of byDomain) {
        if (domain === "") continue;
        if (context.suppliedElsewhere(domain)) perVmElsewhere = Math.max(perVmElsewhere, n);
        else perVm = Math.max(perVm, n);
      }
      const fields = {
        collector,
        stats_per_vm: perVm,
        stats_per_vm_from_other_collectors: perVmElsewhere,
        host_stats: byDomain.get("") ?? 0,
      };
      const elsewhere = context.qmpEnabled || context.libvirtEnabled;
      const lost = perVm > 0 || (fields.host_stats > 0 && !elsewhere);
      if (lost) {
        const todo = elsewhere
          ? 'give each VM a QMP socket (docs/metrics.md, "qmp"), or run it under libvirt >= 8.9 (docs/metrics.md, "libvirt"), so that an enabled collector reads them'
          : "enable --collector.qmp to read them from QEMU, or --collector.libvirt on a libvirt host";
        this.#logger.warn(
          `The kernel refuses debugfs stats (kernel lockdown): ${perVm} per VM and ${fields.host_stats} host totals are not exported; ${todo}; each path is logged at debug`,
          fields,
        );
      } else {
        this.#logger.info(
          `The kernel refuses debugfs stats (kernel lockdown): ${perVmElsewhere} per VM come from another collector, ${fields.host_stats} host totals (domain="global") are not exported; each path is logged at debug`,
          fields,
        );
      }
    }
  }
}

/** Records the read errors of one scrape. */
export class ReadErrorRecorder {
  /** The counts so far. */
  readonly counts: ReadErrorCounts = {
    byCollector: new Map(),
    byDomain: new Map(),
    refused: new Map(),
    refusedPath: undefined,
  };
  #logger: Logger;
  #warned: Set<string>;

  /**
   * Starts a scrape's counts.
   *
   * @param logger Where the lines go.
   * @param warned Paths already logged at warn.
   */
  constructor(logger: Logger, warned: Set<string>) {
    this.#logger = logger;
    this.#warned = warned;
  }

  /**
   * Records one stat that could not be read.
   *
   * @param where The collector, the VM's domain (if any) and the path or source.
   * @param reason Why.
   * @param detail The error text.
   * @param error What the read threw: a refusal by the kernel (EPERM) is summed up, not logged
   *   per path; one by Deno (a missing `--allow-read`) is logged per path.
   */
  record(
    where: { collector: string; domain: string | undefined; path: string },
    reason: ReadErrorReason,
    detail: string,
    error?: unknown,
  ): void {
    let reasons = this.counts.byCollector.get(where.collector);
    if (reasons === undefined) {
      reasons = new Map();
      this.counts.byCollector.set(where.collector, reasons);
    }
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    if (where.domain !== undefined) {
      this.counts.byDomain.set(where.domain, (this.counts.byDomain.get(where.domain) ?? 0) + 1);
    }
    const refused = error instanceof Deno.errors.PermissionDenied;
    if (refused) this.#countRefused(where);
    // A VM that exits mid-scrape is normal on a hypervisor: never worth a warning. Refusals are
    // summed up by ReadErrorLog.summarize.
    const quiet = reason === "vanished" || refused;
    const first = !quiet && !this.#warned.has(where.path);
    if (first) this.#warned.add(where.path);
    const fields = { collector: where.collector, path: where.path, reason, err: detail };
    if (first) this.#logger.warn("Cannot read stat; skipping it (logged once per path)", fields);
    else this.#logger.debug("Cannot read stat; skipping it", fields);
  }

  #countRefused(where: { collector: string; domain: string | undefined; path: string }): void {
    let byDomain = this.counts.refused.get(where.collector);
    if (byDomain === undefined) {
      byDomain = new Map();
      this.counts.refused.set(where.collector, byDomain);
    }
    const domain = where.domain ?? "";
    byDomain.set(domain, (byDomain.get(domain) ?? 0) + 1);
    this.counts.refusedPath ??= where.path;
  }
}

/**
 * Adds up the read errors of several collectors; the first refused path, in the order given,
 * is kept.
 *
 * @param all Each collector's counts, in registry order.
 * @returns The sums.
 */
export function mergeReadErrorCounts(all: readonly ReadErrorCounts[]): ReadErrorCounts {
  const merged: ReadErrorCounts = {
    byCollector: new Map(),
    byDomain: new Map(),
    refused: new Map(),
    refusedPath: undefined,
  };
  for (const counts of all) {
    for (const [collector, reasons] of counts.byCollector) {
      merged.byCollector.set(collector, new Map(reasons));
    }
    for (const [domain, n] of counts.byDomain) {
      merged.byDomain.set(domain, (merged.byDomain.get(domain) ?? 0) + n);
    }
    for (const [collector, byDomain] of counts.refused) {
      merged.refused.set(collector, new Map(byDomain));
    }
    merged.refusedPath ??= counts.refusedPath;
  }
  return merged;
}

/**
 * Whether a VM's stats came from a collector other than debugfs in this scrape (QMP, libvirt):
 * what debugfs refuses for it is then not lost. Looked up only when a refusal is summarized.
 *
 * @param stats The scrape's stats.
 * @returns The lookup, by domain, for {@linkcode RefusalContext.suppliedElsewhere}.
 */
export function suppliedElsewhere(stats: StatSet): (domain: string) => boolean {
  let domains: Set<string> | undefined;
  return (domain) => {
    domains ??= new Set(
      stats.stats().flatMap((s) => s.source !== "debugfs" && s.vm ? [s.vm.domain] : []),
    );
    return domains.has(domain);
  };
}

/**
 * Which logged paths to keep ({@linkcode ReadErrorLog.prune}): those of VMs still present, root
 * files and paths outside debugfs; the paths of VMs that are gone are forgotten.
 *
 * @param kvmdebugDir The debugfs KVM dir.
 * @param vms The VMs found.
 * @returns Whether to keep a path.
 */
export function pathOfPresentVm(
  kvmdebugDir: string,
  vms: readonly DiscoveredVm[],
): (path: string) => boolean {
  const present = new Set(vms.map((vm) => vm.dir));
  const root = `${kvmdebugDir}/`;
  return (path) => {
    if (!path.startsWith(root)) return true;
    const rest = path.slice(root.length);
    const slash = rest.indexOf("/");
    return slash === -1 || present.has(rest.slice(0, slash));
  };
}
