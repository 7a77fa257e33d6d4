import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { parseDomainStats } from "../../src/libvirt/domain_stats.ts";
import type { TypedParamValue } from "../../src/libvirt/remote_protocol.ts";

const DOMAIN = { name: "web", uuid: "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21", id: 1 };

function parse(params: [string, TypedParamValue][]) {
  return parseDomainStats({ domain: DOMAIN, params });
}

// Fields as libvirt 9.0 sent them for a 2-vCPU KVM guest (a subset of the 116).
const LIBVIRT_9_0: [string, TypedParamValue][] = [
  ["state.state", 1],
  ["state.reason", 1],
  ["vcpu.current", 2],
  ["vcpu.maximum", 2],
  ["vcpu.0.state", 1],
  ["vcpu.0.time", 3730000000n],
  ["vcpu.0.wait", 0n],
  ["vcpu.0.delay", 2030971514n],
  ["vcpu.0.exits.sum", 204n],
  ["vcpu.0.blocking.cur", false],
  ["vcpu.0.guest_mode.cur", true],
  ["vcpu.1.state", 1],
  ["vcpu.1.time", 0n],
  ["vcpu.1.wait", 0n],
  ["vcpu.1.delay", 22725604n],
  ["vcpu.1.halt_wakeup.sum", 1n],
  ["vm.max_mmu_rmap_size.max", 0n],
  ["vm.pages_4k.cur", 4096n],
  ["vm.remote_tlb_flush_requests.sum", 2n],
];

Deno.test("parseDomainStats() reads state, vCPU and VM groups as libvirt 9.0 sends them", () => {
  deepStrictEqual(parse(LIBVIRT_9_0), {
    name: "web",
    uuid: DOMAIN.uuid,
    state: 1,
    stateReason: 1,
    vcpuCurrent: 2,
    vcpuMaximum: 2,
    vm: [
      { name: "max_mmu_rmap_size", type: "max", value: 0n },
      { name: "pages_4k", type: "cur", value: 4096n },
      { name: "remote_tlb_flush_requests", type: "sum", value: 2n },
    ],
    vcpus: [
      {
        index: 0,
        state: 1,
        timeNs: 3730000000n,
        waitNs: 0n,
        delayNs: 2030971514n,
        kvm: [
          { name: "exits", type: "sum", value: 204n },
          { name: "blocking", type: "cur", value: 0 },
          { name: "guest_mode", type: "cur", value: 1 },
        ],
      },
      {
        index: 1,
        state: 1,
        timeNs: 0n,
        waitNs: 0n,
        delayNs: 22725604n,
        kvm: [{ name: "halt_wakeup", type: "sum", value: 1n }],
      },
    ],
    groups: { cpu: {}, balloon: {}, blocks: [], nets: [] },
    problems: [],
    skipped: { type: 0, range: 0, unnamed: 0, duplicate: 0, too_many: 0 },
  });
});

Deno.test("parseDomainStats() handles odd records", async (t) => {
  const cases: {
    what: string;
    params: [string, TypedParamValue][];
    check: (s: ReturnType<typeof parse>) => void;
  }[] = [
    {
      what: "empty record (NOWAIT skipped a busy domain's stats)",
      params: [],
      check: (s) => {
        deepStrictEqual([s.vm, s.vcpus, s.problems, s.state], [[], [], [], undefined]);
      },
    },
    {
      what: "vCPUs sorted by index, not arrival",
      params: [["vcpu.10.time", 1n], ["vcpu.2.time", 2n]],
      check: (s) => deepStrictEqual(s.vcpus.map((v) => v.index), [2, 10]),
    },
    {
      what: "unknown fields ignored (other groups, older halted flag)",
      params: [["perf.cmt", 1n], ["vcpu.0.halted", true], ["vm.weird", 1n]],
      check: (s) => deepStrictEqual([s.vm, s.vcpus, s.problems], [[], [], []]),
    },
    {
      what: "a string where a counter belongs is a problem, not a value",
      params: [["vcpu.0.time", "lots"], ["vm.pages_4k.cur", "x"]],
      check: (s) => {
        deepStrictEqual(s.vcpus, [{ index: 0, kvm: [] }]);
        deepStrictEqual(s.vm, []);
        deepStrictEqual(s.problems, [
          {
            reason: "type",
            field: "vcpu.0.time",
            message:
              'libvirt field "vcpu.0.time" of domain "web" is string "lots", expected a non-negative integer',
          },
          {
            reason: "type",
            field: "vm.pages_4k.cur",
            message:
              'libvirt field "vm.pages_4k.cur" of domain "web" is string "x", expected an integer or a boolean',
          },
        ]);
      },
    },
    {
      what: "a negative time is a problem",
      params: [["vcpu.0.delay", -1n]],
      check: (s) => strictEqual(s.problems.length, 1),
    },
    {
      what: "a double KVM value is kept",
      params: [["vm.ratio.cur", 0.5]],
      check: (s) => deepStrictEqual(s.vm, [{ name: "ratio", type: "cur", value: 0.5 }]),
    },
    {
      what: "state given as a bigint is a problem",
      params: [["state.state", 1n]],
      check: (s) => {
        strictEqual(s.state, undefined);
        strictEqual(s.problems.length, 1);
      },
    },
    {
      what: "a state libvirt does not define is out of range",
      params: [["state.state", 99], ["state.reason", 1]],
      check: (s) => {
        strictEqual(s.state, undefined);
        strictEqual(s.skipped.range, 1);
      },
    },
    {
      what: "200000 bad fields: all counted, 16 problem lines kept",
      params: Array.from({ length: 200_000 }, (_, i) => [`vcpu.${i}.time`, "x"]),
      check: (s) => {
        strictEqual(s.skipped.type, 200_000);
        strictEqual(s.problems.length, 16);
      },
    },
    {
      what: "a field named like an Object prototype member is ignored",
      params: [["constructor", 1]],
      check: (s) => deepStrictEqual(s.problems, []),
    },
  ];
  for (const c of cases) await t.step(c.what, () => c.check(parse(c.params)));
});
