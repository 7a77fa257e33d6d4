import { deepStrictEqual } from "node:assert/strict";
import { devicesOf } from "../../src/libvirt/domain_devices.ts";
import { parseDomainXml } from "../../src/libvirt/domain_xml.ts";

function devices(xml: string) {
  const { disks, interfaces } = devicesOf(parseDomainXml(xml));
  return { disks: Object.fromEntries(disks), interfaces: Object.fromEntries(interfaces) };
}

const CASES: { what: string; xml: string; want: ReturnType<typeof devices> }[] = [
  {
    what: "libvirt 9.0's disk, CD-ROM and tap, as a running domain's XML has them",
    xml: `<domain type='kvm' id='1'><devices>
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
        <source file='/var/lib/libvirt/images/web.qcow2' index='2'/>
        <backingStore/><target dev='vda' bus='virtio'/><alias name='virtio-disk0'/></disk>
      <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
      <interface type='ethernet'><mac address='52:54:00:6b:65:01'/><target dev='vnet0'/>
        <model type='virtio'/><alias name='net0'/></interface>
    </devices></domain>`,
    want: {
      disks: { vda: { bus: "virtio" }, sda: { bus: "sata" } },
      interfaces: { vnet0: { mac: "52:54:00:6b:65:01", model: "virtio" } },
    },
  },
  {
    what: "an inactive domain's interface has no target: not matchable, skipped",
    xml: `<domain><devices><interface type='network'><mac address='52:54:00:00:00:02'/>
      </interface></devices></domain>`,
    want: { disks: {}, interfaces: {} },
  },
  {
    what: "no bus, no MAC, no model: the device without them",
    xml: `<domain><devices><disk><target dev='vdb'/></disk><interface><target dev='tap1'/>
      </interface></devices></domain>`,
    want: { disks: { vdb: {} }, interfaces: { tap1: {} } },
  },
  {
    what: "a repeated target: the first kept; empty and huge values dropped",
    xml: `<domain><devices><disk><target dev='vda' bus='virtio'/></disk>
      <disk><target dev='vda' bus='ide'/></disk><disk><target dev='' bus='ide'/></disk>
      <interface><target dev='t'/><mac address='${"f".repeat(5000)}'/><model type=''/></interface>
      </devices></domain>`,
    want: { disks: { vda: { bus: "virtio" } }, interfaces: { t: {} } },
  },
  {
    what: "devices outside <devices>, or in another namespace, are not the domain's",
    xml: `<domain xmlns:x='urn:x'><disk><target dev='vda'/></disk><devices>
      <x:disk><target dev='vdz'/></x:disk></devices></domain>`,
    want: { disks: {}, interfaces: {} },
  },
  {
    what: "not a domain",
    xml: `<network><devices><disk><target dev='vda'/></disk></devices></network>`,
    want: { disks: {}, interfaces: {} },
  },
];

Deno.test("devicesOf() reads disks' bus and interfaces' MAC and model by target", async (t) => {
  for (const c of CASES) await t.step(c.what, () => deepStrictEqual(devices(c.xml), c.want));
});

Deno.test("devicesOf() keeps 256 disks of a hostile XML's 10000", () => {
  const xml = `<domain><devices>${
    Array.from({ length: 10_000 }, (_, i) => `<disk><target dev='d${i}'/></disk>`).join("")
  }</devices></domain>`;
  deepStrictEqual(devicesOf(parseDomainXml(xml)).disks.size, 256);
});
