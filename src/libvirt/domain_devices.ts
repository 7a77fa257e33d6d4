/**
 * What a domain XML says of its disks and interfaces that `domstats` does
 * not: a disk's bus, an interface's MAC and model. Keyed as `domstats` names
 * them: a disk by its target (`<target dev='vda' bus='virtio'/>`, libvirt's
 * `block.N.name`), an interface by its host-side device
 * (`<target dev='vnet0'/>`, libvirt's `net.N.name`). Pure.
 *
 * @module
 */

import { MAX_DEVICES, MAX_LABEL_CHARS } from "./domain_groups.ts";
import type { XmlElement } from "./domain_xml.ts";

/** A disk as the XML describes it. */
export interface DiskDetails {
  /** `<target bus=...>`: `virtio`, `scsi`, `sata`, `ide`, ... */
  bus?: string;
}

/** An interface as the XML describes it. */
export interface InterfaceDetails {
  /** `<mac address=...>`, the guest's MAC. */
  mac?: string;
  /** `<model type=...>`: `virtio`, `e1000`, ... */
  model?: string;
}

/** A domain's disks and interfaces by the names `domstats` gives them. */
export interface DomainDevices {
  /** Disks by target, e.g. `vda`. */
  disks: ReadonlyMap<string, DiskDetails>;
  /** Interfaces by host-side device, e.g. `vnet0`. */
  interfaces: ReadonlyMap<string, InterfaceDetails>;
}

/** An attribute fit for a label value: present, not empty, not huge. */
function attribute(element: XmlElement | undefined, name: string): string | undefined {
  const value = element?.attributes.get(name);
  return value === undefined || value === "" || value.length > MAX_LABEL_CHARS ? undefined : value;
}

function child(element: XmlElement, name: string): XmlElement | undefined {
  return element.children.find((c) => c.name === name && c.namespace === "");
}

/**
 * Reads the disks and interfaces of a parsed domain XML; at most
 * {@linkcode MAX_DEVICES} of each, the first of a repeated name.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { devicesOf } from "./domain_devices.ts";
 * import { parseDomainXml } from "./domain_xml.ts";
 * const root = parseDomainXml(`<domain><devices>
 *   <disk><target dev='vda' bus='virtio'/></disk>
 *   <interface><mac address='52:54:00:00:00:01'/><target dev='vnet0'/></interface>
 * </devices></domain>`);
 * const devices = devicesOf(root);
 * assert.equal(devices.disks.get("vda")?.bus, "virtio");
 * assert.equal(devices.interfaces.get("vnet0")?.mac, "52:54:00:00:00:01");
 * ```
 *
 * @param root The XML's root element.
 * @returns The devices; none when the XML has no `<devices>`.
 */
export function devicesOf(root: XmlElement): DomainDevices {
  const disks = new Map<string, DiskDetails>();
  const interfaces = new Map<string, InterfaceDetails>();
  const devices = root.name === "domain" ? child(root, "devices") : undefined;
  for (const element of devices?.children ?? []) {
    if (element.namespace !== "") continue;
    const target = child(element, "target");
    const dev = attribute(target, "dev");
    if (dev === undefined) continue;
    if (element.name === "disk" && disks.size < MAX_DEVICES && !disks.has(dev)) {
      const bus = attribute(target, "bus");
      disks.set(dev, bus === undefined ? {} : { bus });
    } else if (
      element.name === "interface" && interfaces.size < MAX_DEVICES && !interfaces.has(dev)
    ) {
      const details: InterfaceDetails = {};
      const mac = attribute(child(element, "mac"), "address");
      const model = attribute(child(element, "model"), "type");
      if (mac !== undefined) details.mac = mac;
      if (model !== undefined) details.model = model;
      interfaces.set(dev, details);
    }
  }
  return { disks, interfaces };
}
