/**
 * What a fake libvirtd serves for the sample tree's OpenStack VM
 * (`10620-10`, `instance-0000002a`, `-uuid 3c1e8a52-...`): libvirt 9.0's
 * fields for a 4-vCPU KVM guest (a few KVM stats of each kind, one the
 * catalog lacks) and a domain XML with Nova metadata. Also a domain no
 * discovered VM has, and one with the VM's name but another UUID: neither
 * may be matched.
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
  ],
  xml: SAMPLE_XML,
};
