/**
 * How each VM dir gets its `domain` label. Pure: the caller supplies what it
 * read from debugfs and procfs.
 *
 * @module
 */

import type { VmConfig, VmEntry } from "../config/vm_config.ts";

/** Where a VM's name came from. */
export type NameSource = "config" | "cmdline" | "dir";

/** A VM dir and what is known about its process. */
export interface VmCandidate {
  /** The `PID-FD` dir name. */
  dir: string;
  /** The pid in the dir name. */
  pid: number;
  /** The name on the VMM's command line, if any. */
  cmdlineName: string | undefined;
}

/** A VM with its resolved name. */
export interface NamedVm extends VmCandidate {
  /** The `domain` label: unique among VMs and never "global". */
  domain: string;
  /** Where the name came from. */
  nameSource: NameSource;
  /** The vm.yaml entry that matched, if any. */
  entry: VmEntry | undefined;
  /** Set when the name was taken and `@PID-FD` (and maybe `~N`) was appended. */
  renamedFrom: string | undefined;
}

/** The domain label of the root (all-VM) stats, which no VM may take. */
export const GLOBAL_DOMAIN = "global";

const dirOrder = new Intl.Collator("en", { numeric: true });

/** Dir order: numeric (`999-1` before `1000-1`), then plain, so that it is total. */
function compareDirs(a: VmCandidate, b: VmCandidate): number {
  return dirOrder.compare(a.dir, b.dir) || (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0);
}

/**
 * Resolves names: the vm.yaml entry for the dir, else the entry for the pid,
 * else the command-line name, else the dir name. Every `domain` is unique, never
 * "global", and depends only on the set of VMs (not on the order they were found):
 *
 * 1. a name held by one VM only (and not "global") is that VM's domain;
 * 2. of several VMs with one name, the first in dir order keeps it;
 * 3. the others, in dir order, become `NAME@PID-FD`, or `NAME@PID-FD~2`, `~3`... when that is
 *    taken too (another VM may be called `NAME@PID-FD`; steps 1 and 2 are served first, so a
 *    renamed VM never takes the name of one that keeps its own).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveVmNames } from "./vm_names.ts";
 * const vms = resolveVmNames(
 *   [{ dir: "1-10", pid: 1, cmdlineName: "web" }, { dir: "2-10", pid: 2, cmdlineName: "web" }],
 *   { config: { entries: [] }, onlyListed: false },
 * );
 * assert(vms[1]?.domain === "web@2-10");
 * ```
 *
 * @param candidates The VM dirs found.
 * @param options The config, and whether unlisted VMs are dropped.
 * @returns The VMs to export, in dir order.
 */
export function resolveVmNames(
  candidates: readonly VmCandidate[],
  options: { config: VmConfig; onlyListed: boolean },
): NamedVm[] {
  const wanted = wantedNames(candidates, options);
  const taken = new Set([GLOBAL_DOMAIN]);
  const keeps = new Set<VmCandidate>();
  for (const vm of wanted) {
    if (!taken.has(vm.name)) {
      taken.add(vm.name);
      keeps.add(vm.candidate);
    }
  }
  return wanted.map(({ candidate, name, nameSource, entry }) => {
    let domain = name;
    if (!keeps.has(candidate)) {
      domain = `${name}@${candidate.dir}`;
      for (let n = 2; taken.has(domain); n++) domain = `${name}@${candidate.dir}~${n}`;
      taken.add(domain);
    }
    return {
      ...candidate,
      domain,
      nameSource,
      entry,
      renamedFrom: domain === name ? undefined : name,
    };
  });
}

/** The name each VM would have without collisions, in dir order. */
function wantedNames(
  candidates: readonly VmCandidate[],
  options: { config: VmConfig; onlyListed: boolean },
): { candidate: VmCandidate; name: string; nameSource: NameSource; entry: VmEntry | undefined }[] {
  const byDir = new Map<string, VmEntry>();
  const byPid = new Map<number, VmEntry>();
  for (const entry of options.config.entries) {
    if (entry.kvmDebugDir !== undefined) byDir.set(entry.kvmDebugDir, entry);
    if (entry.pid !== undefined && !byPid.has(entry.pid)) byPid.set(entry.pid, entry);
  }
  const wanted = [];
  for (const candidate of [...candidates].sort(compareDirs)) {
    const entry = byDir.get(candidate.dir) ?? byPid.get(candidate.pid);
    if (entry === undefined && options.onlyListed) continue;
    const [name, nameSource]: [string, NameSource] = entry !== undefined
      ? [entry.name, "config"]
      : candidate.cmdlineName !== undefined
      ? [candidate.cmdlineName, "cmdline"]
      : [candidate.dir, "dir"];
    wanted.push({ candidate, name, nameSource, entry });
  }
  return wanted;
}
