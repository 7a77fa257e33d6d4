/**
 * What collectors learn about each VM beside its stats (its vCPU count, how a
 * source answered, its vCPU thread ids, its libvirt identity), and how the
 * runner merges what several collectors learned: in registry order, so that
 * the result never depends on which collector finished first.
 *
 * @module
 */

import type { DomainInfo } from "../libvirt/domain_info.ts";
import type { RunState } from "../metrics/vm_families.ts";

/** What one collector learned about one VM in a scrape. */
export interface VmObservation {
  /** vCPUs seen. */
  vcpus?: number;
  /** How the collector's source answered for this VM: "ok" or the error reason. */
  outcome?: string;
  /** vCPU thread ids by vCPU index. */
  vcpuThreads?: ReadonlyMap<string, number>;
  /** The VM's identity in libvirt. */
  identity?: DomainInfo;
  /** The VM's run state. */
  runState?: RunState;
}

/** What one collector learned about each VM in a scrape, by VM dir; part of its output. */
export class VmObservations {
  readonly #byDir = new Map<string, VmObservation>();

  /**
   * Records what was learned of a VM; a field observed again is replaced.
   *
   * @param dir The VM's `PID-FD` dir.
   * @param observation What was learned.
   */
  observe(dir: string, observation: VmObservation): void {
    this.#byDir.set(dir, { ...this.#byDir.get(dir), ...observation });
  }

  /**
   * What was learned of a VM.
   *
   * @param dir The VM's `PID-FD` dir.
   * @returns The observation, if any.
   */
  get(dir: string): VmObservation | undefined {
    return this.#byDir.get(dir);
  }

  /**
   * Every VM observed.
   *
   * @returns Pairs of VM dir and observation.
   */
  entries(): IterableIterator<[string, VmObservation]> {
    return this.#byDir.entries();
  }
}

/** What the collectors of a scrape learned about one VM, merged. */
export interface MergedVmObservation {
  /** vCPUs seen by the first collector, in registry order, that counted them. */
  vcpus: number | undefined;
  /** vCPU thread ids, from the first collector that reported them. */
  vcpuThreads: ReadonlyMap<string, number> | undefined;
  /** The VM's identity in libvirt. */
  identity: DomainInfo | undefined;
  /** The VM's run state, from the first collector that reported it. */
  runState: RunState | undefined;
  /** How each collector's source answered, by collector name. */
  outcomes: ReadonlyMap<string, string>;
}

/** Every VM's merged observations, by VM dir. */
export type MergedObservations = ReadonlyMap<string, MergedVmObservation>;

/**
 * Merges collectors' observations; for each field, the first collector in
 * `byCollector` that observed it wins.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { mergeObservations, VmObservations } from "./vm_observations.ts";
 * const debugfs = new VmObservations();
 * debugfs.observe("1-2", { vcpus: 2 });
 * const qmp = new VmObservations();
 * qmp.observe("1-2", { vcpus: 4, outcome: "ok" });
 * const merged = mergeObservations([["kvm_stat", debugfs], ["qmp", qmp]]).get("1-2");
 * assert.equal(merged?.vcpus, 2);
 * assert.equal(merged?.outcomes.get("qmp"), "ok");
 * ```
 *
 * @param byCollector Each collector's observations, in registry order.
 * @returns The merged observations.
 */
export function mergeObservations(
  byCollector: readonly (readonly [string, VmObservations])[],
): MergedObservations {
  const merged = new Map<string, MergedVmObservation & { outcomes: Map<string, string> }>();
  for (const [name, observations] of byCollector) {
    for (const [dir, seen] of observations.entries()) {
      let vm = merged.get(dir);
      if (vm === undefined) {
        vm = {
          vcpus: undefined,
          vcpuThreads: undefined,
          identity: undefined,
          runState: undefined,
          outcomes: new Map(),
        };
        merged.set(dir, vm);
      }
      vm.vcpus ??= seen.vcpus;
      vm.vcpuThreads ??= seen.vcpuThreads;
      vm.identity ??= seen.identity;
      vm.runState ??= seen.runState;
      if (seen.outcome !== undefined) vm.outcomes.set(name, seen.outcome);
    }
  }
  return merged;
}
