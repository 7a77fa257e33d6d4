/**
 * What the status page shows of each VM, made from the last scrape's report.
 *
 * @module
 */

import { QMP } from "../collectors/qmp.ts";
import type { ScrapeReport } from "../collectors/scrape_report.ts";
import type { NameSource } from "../discovery/vm_names.ts";

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

/**
 * The status page's rows: one per VM the scrape found.
 *
 * @param report The scrape's report.
 * @returns The rows, in discovery order.
 */
export function vmStatuses(report: ScrapeReport): VmStatus[] {
  return report.vms.map((vm) => {
    const seen = report.observations.get(vm.dir);
    return {
      domain: vm.domain,
      nameSource: vm.nameSource,
      pid: vm.pid,
      dir: vm.dir,
      vcpus: seen?.vcpus,
      readErrors: report.readErrorsByDomain.get(vm.domain) ?? 0,
      qmp: seen?.outcomes.get(QMP),
    };
  });
}
