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
  /** Set when the name was taken and `@PID-FD` was appended. */
  renamedFrom: string | undefined;
}

/** The domain label of the root (all-VM) stats, which no VM may take. */
export const GLOBAL_DOMAIN = "global";

const dirOrder = new Intl.Collator("en", { numeric: true });

/**
 * Resolves names: the vm.yaml entry for the dir, else the entry for the pid,
 * else the command-line name, else the dir name. VMs are taken in dir order;
 * one whose name is already taken (or is "global") becomes `NAME@PID-FD`.
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
  const byDir = new Map<string, VmEntry>();
  const byPid = new Map<number, VmEntry>();
  for (const entry of options.config.entries) {
    if (entry.kvmDebugDir !== undefined) byDir.set(entry.kvmDebugDir, entry);
    if (entry.pid !== undefined && !byPid.has(entry.pid)) byPid.set(entry.pid, entry);
  }
  const taken = new Set([GLOBAL_DOMAIN]);
  const named: NamedVm[] = [];
  for (const vm of [...candidates].sort((a, b) => dirOrder.compare(a.dir, b.dir))) {
    const entry = byDir.get(vm.dir) ?? byPid.get(vm.pid);
    if (entry === undefined && options.onlyListed) continue;
    const [name, nameSource]: [string, NameSource] = entry !== undefined
      ? [entry.name, "config"]
      : vm.cmdlineName !== undefined
      ? [vm.cmdlineName, "cmdline"]
      : [vm.dir, "dir"];
    const unique = taken.has(name) ? `${name}@${vm.dir}` : name;
    taken.add(unique);
    named.push({
      ...vm,
      domain: unique,
      nameSource,
      entry,
      renamedFrom: unique === name ? undefined : name,
    });
  }
  return named;
}
