/**
 * What a fake libvirtd serves for the sample tree's OpenStack VM
 * (`10620-10`, `instance-0000002a`, `-uuid 3c1e8a52-...`): libvirt 9.0's
 * fields for a 4-vCPU KVM guest (a few KVM stats of each kind, one the
 * catalog lacks), its CPU time, balloon (with guest stats), a qcow2 disk and
 * a tap, and a domain XML with Nova metadata and the disk's bus and the tap's MAC. Also a domain no discovered VM
 * has, one with the VM's name but another UUID (neither may be matched), and
 * a shut-off domain (state, a disk's sizes; no VM).
 *
 * @module
 */

import type { FakeLibvirtData, FakeParam } from "./fake_libvirt.ts";

/** The sample VM's UUID (its command line's `-uuid`). */
export const SAMPLE_UUID = "3c1e8a52-7b4d-4e0f-9a6b-2d5c8e1f4a70";

function vcpuParams(index: number): FakeParam[] {
  const n = BigInt(index);
  return [
    [`vcpu.${index}.state`, "int", 1],
    [`vcpu.${index}.time`, "ullong", 5_120_000_000n + n * 10_000_000n],
    [`vcpu.${index}.wait`, "ullong", 0n],
    [`vcpu.${index}.delay`, "ullong", 70_000_001n + n],
    [`vcpu.${index}.exits.sum`, "ullong", 1000n + n],
    [`vcpu.${index}.halt_wait_ns.sum`, "ullong", 2_000_000_000n + n],
    [`vcpu.${index}.blocking.cur`, "boolean", index % 2 === 1],
    [`vcpu.${index}.new_stat_ns.sum`, "ullong", 5n],
  ];
}

/** The sample VM's fields. */
export const SAMPLE_PARAMS: FakeParam[] = [
  ["state.state", "int", 1],
  ["state.reason", "int", 1],
  ["vcpu.current", "uint", 4],
  ["vcpu.maximum", "uint", 4],
  ...[0, 1, 2, 3].flatMap(vcpuParams),
  ["vm.pages_4k.cur", "ullong", 999n],
  ["vm.remote_tlb_flush.sum", "ullong", 18446744073709551615n],
  ["vm.mmu_kicks_spared.sum", "ullong", 12n],
  ["vm.max_mmu_rmap_size.max", "ullong", 7n],
  ["cpu.time", "ullong", 30_500_000_123n],
  ["cpu.user", "ullong", 21_000_000_000n],
  ["cpu.system", "ullong", 9_000_000_000n],
  ["balloon.current", "ullong", 4_194_304n],
  ["balloon.maximum", "ullong", 8_388_608n],
  ["balloon.swap_in", "ullong", 0n],
  ["balloon.swap_out", "ullong", 4n],
  ["balloon.major_fault", "ullong", 812n],
  ["balloon.minor_fault", "ullong", 2_345_678n],
  ["balloon.unused", "ullong", 3_000_000n],
  ["balloon.available", "ullong", 4_030_000n],
  ["balloon.usable", "ullong", 3_500_000n],
  ["balloon.last-update", "ullong", 1_764_770_000n],
  ["balloon.disk_caches", "ullong", 400_000n],
  ["balloon.rss", "ullong", 1_200_000n],
  ["block.count", "uint", 1],
  ["block.0.name", "string", "vda"],
  ["block.0.path", "string", "/var/lib/nova/instances/3c1e8a52/disk"],
  ["block.0.rd.reqs", "ullong", 10_000n],
  ["block.0.rd.bytes", "ullong", 300_000_000n],
  ["block.0.rd.times", "ullong", 5_000_000_001n],
  ["block.0.wr.reqs", "ullong", 2_000n],
  ["block.0.wr.bytes", "ullong", 40_000_000n],
  ["block.0.wr.times", "ullong", 900_000_000n],
  ["block.0.fl.reqs", "ullong", 150n],
  ["block.0.fl.times", "ullong", 75_000_000n],
  ["block.0.allocation", "ullong", 2_147_483_648n],
  ["block.0.capacity", "ullong", 21_474_836_480n],
  ["block.0.physical", "ullong", 2_200_000_000n],
  ["net.count", "uint", 1],
  ["net.0.name", "string", "tap1f4ecfdb-9f"],
  ["net.0.rx.bytes", "ullong", 123_456n],
  ["net.0.rx.pkts", "ullong", 1_000n],
  ["net.0.rx.errs", "ullong", 0n],
  ["net.0.rx.drop", "ullong", 2n],
  ["net.0.tx.bytes", "ullong", 654_321n],
  ["net.0.tx.pkts", "ullong", 900n],
  ["net.0.tx.errs", "ullong", 0n],
  ["net.0.tx.drop", "ullong", 0n],
];

/** A shut-off domain: no VM, no vCPU or VM stats; libvirt still knows its disk's sizes. */
export const SHUTOFF_PARAMS: FakeParam[] = [
  ["state.state", "int", 5],
  ["state.reason", "int", 1],
  ["cpu.time", "ullong", 480_000_000n], // libvirt 9.0: libvirtd's own, not the domain's.
  ["balloon.maximum", "ullong", 1_048_576n],
  ["block.count", "uint", 1],
  ["block.0.name", "string", "vda"],
  ["block.0.path", "string", "/var/lib/libvirt/images/old.qcow2"],
  ["block.0.allocation", "ullong", 196_608n],
  ["block.0.capacity", "ullong", 1_073_741_824n],
  ["block.0.physical", "ullong", 200_704n],
  ["net.count", "uint", 0],
];

/** Nova's metadata of the sample VM. */
export const SAMPLE_XML = `<domain type='kvm' id='3'>
  <name>instance-0000002a</name>
  <uuid>${SAMPLE_UUID}</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>web-1</nova:name>
      <nova:flavor name="m1.small"/>
      <nova:owner>
        <nova:user uuid="5a8e1b3e-4c2d-4f6a-8b9c-0d1e2f3a4b5c">alice</nova:user>
        <nova:project uuid="8f7e6d5c-4b3a-4291-8a7b-6c5d4e3f2a1b">demo</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/nova/instances/3c1e8a52/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <mac address='fa:16:3e:4b:1c:2d'/>
      <source bridge='qbr1f4ecfdb-9f'/>
      <target dev='tap1f4ecfdb-9f'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>`;

/** The fake's data: the sample VM, a stranger, and a namesake with another UUID. */
export const SAMPLE_LIBVIRT: FakeLibvirtData = {
  domains: [
    { domain: { name: "instance-0000002a", uuid: SAMPLE_UUID, id: 3 }, params: SAMPLE_PARAMS },
    {
      domain: { name: "stranger", uuid: "99999999-0000-4000-8000-000000000000", id: 4 },
      params: [["vcpu.0.exits.sum", "ullong", 5n]],
    },
    {
      domain: { name: "web-01", uuid: "99999999-0000-4000-8000-000000000001", id: 5 },
      params: [["vcpu.0.exits.sum", "ullong", 6n], ["vm.pages_4k.cur", "ullong", 6n]],
    },
    {
      domain: { name: "old-vm", uuid: "99999999-0000-4000-8000-000000000002", id: -1 },
      params: SHUTOFF_PARAMS,
    },
  ],
  xml: SAMPLE_XML,
};
