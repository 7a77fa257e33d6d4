/**
 * What libvirt says about each VM beyond its stats: the domain's libvirt name
 * and, from the domain XML, OpenStack Nova's metadata and the devices' bus and
 * MAC. Kept per VM lifetime
 * (UUID and VMM pid), forgotten when the VM goes; `kvm_vm_info` carries it.
 *
 * @module
 */

import type { Labels } from "../metrics/model.ts";
import type { DomainDevices } from "./domain_devices.ts";
import type { NovaMetadata } from "./nova_metadata.ts";

/** One domain's names. */
export interface DomainInfo {
  /** The domain's name in libvirt. */
  libvirtName: string;
  /** Nova's metadata, when the domain XML carries it. */
  nova: NovaMetadata | undefined;
  /** The disks' bus and the interfaces' MAC and model, when the XML could be read. */
  devices?: DomainDevices;
}

/** A VM as the cache keys it. */
export interface DomainInfoKey {
  /** The VM's `-uuid`. */
  uuid?: string;
  /** The VMM's pid. */
  pid: number;
}

function keyOf(vm: DomainInfoKey): string | undefined {
  return vm.uuid === undefined ? undefined : `${vm.uuid}\n${vm.pid}`;
}

/**
 * The `kvm_vm_info` labels of a domain: `libvirt_name`, and `nova_name`,
 * `nova_project` and `nova_flavor` where Nova's metadata has them.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { domainInfoLabels } from "./domain_info.ts";
 * const labels = domainInfoLabels({ libvirtName: "instance-0000002a", nova: { name: "web-1" } });
 * assert.deepEqual(labels, [["libvirt_name", "instance-0000002a"], ["nova_name", "web-1"]]);
 * ```
 *
 * @param info The domain's names.
 * @returns The label pairs.
 */
export function domainInfoLabels(info: DomainInfo): Labels {
  const labels: [string, string][] = [["libvirt_name", info.libvirtName]];
  const { nova } = info;
  if (nova?.name !== undefined) labels.push(["nova_name", nova.name]);
  if (nova?.projectName !== undefined) labels.push(["nova_project", nova.projectName]);
  if (nova?.flavorName !== undefined) labels.push(["nova_flavor", nova.flavorName]);
  return labels;
}

/**
 * Domain names by VM lifetime. A VM whose QEMU restarts under the same UUID
 * (a reboot from libvirt, a migration back) gets a new pid, so it is read
 * again.
 */
export class DomainInfoCache {
  #byKey = new Map<string, DomainInfo>();

  /**
   * The names of a VM, if read.
   *
   * @param vm The VM's UUID and pid.
   * @returns Its names, or undefined.
   */
  get(vm: DomainInfoKey): DomainInfo | undefined {
    const key = keyOf(vm);
    return key === undefined ? undefined : this.#byKey.get(key);
  }

  /**
   * Stores the names of a VM.
   *
   * @param vm The VM's UUID and pid.
   * @param info Its names.
   */
  set(vm: DomainInfoKey, info: DomainInfo): void {
    const key = keyOf(vm);
    if (key !== undefined) this.#byKey.set(key, info);
  }

  /**
   * Forgets every VM that is not in `vms`.
   *
   * @param vms The VMs found in this scrape.
   */
  retain(vms: readonly DomainInfoKey[]): void {
    const present = new Set(vms.map(keyOf));
    for (const key of this.#byKey.keys()) if (!present.has(key)) this.#byKey.delete(key);
  }

  /** How many VMs the cache holds. */
  get size(): number {
    return this.#byKey.size;
  }
}
