/**
 * The label sets of one naming pass, one per VM and one per vCPU: a host has
 * thousands of series per VM but one `{domain}` and one `{domain,vcpu}` per
 * VM and vCPU, so every series of a VM or vCPU gets the same label set. A
 * scrape then allocates no labels per series, and the renderer formats each
 * label set's text once.
 *
 * @module
 */

import type { Labels } from "../metrics/model.ts";
import type { KvmStat } from "../stats/stat.ts";

/** Options of {@linkcode LabelSets}. */
export interface LabelSetsOptions {
  /** The labels of host stats. */
  host: Labels;
  /** The `domain` of a VM or vCPU stat without a VM. */
  missingDomain: string;
}

/** One VM's label sets. */
interface VmLabels {
  domain: string;
  labels: Labels;
  vcpus: Map<string, Labels>;
}

/**
 * Hands out `{domain}` and `{domain,vcpu}` label sets, the same object for
 * every stat of one VM or vCPU. Label sets are never changed once made, so
 * one may be shared by every family and by renders in flight.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { LabelSets } from "./label_sets.ts";
 * const sets = new LabelSets({ host: [], missingDomain: "" });
 * const vm = { dir: "1-2", domain: "a" };
 * const stat = { level: "vcpu", vm, vcpu: "0" } as const;
 * assert(sets.of(stat) === sets.of({ ...stat, vm: { ...vm } }));
 * assert.deepEqual(sets.of(stat), [["domain", "a"], ["vcpu", "0"]]);
 * ```
 */
export class LabelSets {
  readonly #options: LabelSetsOptions;
  /** By VM dir: the VM's identity. */
  readonly #vms = new Map<string, VmLabels>();

  /**
   * Starts a naming pass's label sets.
   *
   * @param options The host's labels, and the domain of a stat that lacks its VM.
   */
  constructor(options: LabelSetsOptions) {
    this.#options = options;
  }

  /**
   * The labels of a stat: the host's, its VM's or its vCPU's.
   *
   * @param stat The stat's level, VM and vCPU.
   * @returns The label set, shared with every stat of the same VM or vCPU.
   */
  of(stat: Pick<KvmStat, "level" | "vm" | "vcpu">): Labels {
    if (stat.level === "host") return this.#options.host;
    const vm = this.#vm(stat.vm?.dir ?? "", stat.vm?.domain ?? this.#options.missingDomain);
    if (stat.level === "vm") return vm.labels;
    const vcpu = stat.vcpu ?? "";
    let labels = vm.vcpus.get(vcpu);
    if (labels === undefined) {
      labels = [...vm.labels, ["vcpu", vcpu]];
      vm.vcpus.set(vcpu, labels);
    }
    return labels;
  }

  #vm(dir: string, domain: string): VmLabels {
    const known = this.#vms.get(dir);
    if (known !== undefined && known.domain === domain) return known;
    // One dir with two domains in a pass (never from one discovery) gets the later one's sets.
    const made = { domain, labels: [["domain", domain]] as const, vcpus: new Map() };
    this.#vms.set(dir, made);
    return made;
  }
}
