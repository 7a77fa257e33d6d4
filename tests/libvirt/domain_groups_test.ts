import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { MAX_DEVICES } from "../../src/libvirt/domain_groups.ts";
import { parseDomainStats } from "../../src/libvirt/domain_stats.ts";
import type { TypedParamValue } from "../../src/libvirt/remote_protocol.ts";
import { libvirtReason, libvirtState } from "../../src/libvirt/state_reasons.ts";

const DOMAIN = { name: "web", uuid: "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21", id: 1 };

function parse(params: [string, TypedParamValue][]) {
  return parseDomainStats({ domain: DOMAIN, params });
}

// Fields as libvirt 9.0 sends them for a guest with a qcow2 disk, a tap and a stats period.
const LIBVIRT_9_0: [string, TypedParamValue][] = [
  ["cpu.time", 9_830_552_000n],
  ["cpu.user", 5_120_000_000n],
  ["cpu.system", 3_600_000_000n],
  ["cpu.haltpoll.success.time", 1n],
  ["balloon.current", 65536n],
  ["balloon.maximum", 65536n],
  ["balloon.swap_in", 0n],
  ["balloon.major_fault", 120n],
  ["balloon.available", 60000n],
  ["balloon.last-update", 1764770000n],
  ["balloon.rss", 48000n],
  ["balloon.hugetlb_pgalloc", 0n],
  ["block.count", 1],
  ["block.0.name", "vda"],
  ["block.0.path", "/var/lib/libvirt/images/web.qcow2"],
  ["block.0.backingIndex", 1],
  ["block.0.rd.reqs", 300n],
  ["block.0.rd.bytes", 1_228_800n],
  ["block.0.rd.times", 40_000_000n],
  ["block.0.fl.reqs", 0n],
  ["block.0.allocation", 200_704n],
  ["block.0.capacity", 1_073_741_824n],
  ["block.0.physical", 200_704n],
  ["block.0.threshold", 5n],
  ["net.count", 1],
  ["net.0.name", "vnet0"],
  ["net.0.rx.bytes", 1000n],
  ["net.0.tx.pkts", 3n],
  ["net.0.tx.drop", 0n],
];

Deno.test("parseDomainStats() reads the cpu-total, balloon, block and interface groups", () => {
  const stats = parse(LIBVIRT_9_0);
  deepStrictEqual(stats.groups, {
    cpu: { time: 9_830_552_000n, user: 5_120_000_000n, system: 3_600_000_000n },
    balloon: {
      current: 65536n,
      maximum: 65536n,
      swap_in: 0n,
      major_fault: 120n,
      available: 60000n,
      "last-update": 1764770000n,
      rss: 48000n,
    },
    blocks: [{
      index: 0,
      name: "vda",
      path: "/var/lib/libvirt/images/web.qcow2",
      values: {
        "rd.reqs": 300n,
        "rd.bytes": 1_228_800n,
        "rd.times": 40_000_000n,
        "fl.reqs": 0n,
        allocation: 200_704n,
        capacity: 1_073_741_824n,
        physical: 200_704n,
      },
    }],
    nets: [{
      index: 0,
      name: "vnet0",
      values: { "rx.bytes": 1000n, "tx.pkts": 3n, "tx.drop": 0n },
    }],
  });
  deepStrictEqual(stats.problems, []);
});

Deno.test("parseDomainStats() reads a disk's errors as libvirt names them, .errors (Xen only)", () => {
  // VIR_DOMAIN_STATS_BLOCK_SUFFIX_ERRORS is ".errors"; "errs" is no libvirt field.
  const stats = parse([
    ["block.0.name", "xvda"],
    ["block.0.errors", 3n],
    ["block.0.errs", 4n],
  ]);
  deepStrictEqual(stats.groups.blocks, [{ index: 0, name: "xvda", values: { errors: 3n } }]);
  deepStrictEqual(stats.problems, []);
});

const HOSTILE: {
  what: string;
  params: [string, TypedParamValue][];
  skipped: Partial<Record<"type" | "range" | "unnamed" | "duplicate" | "too_many", number>>;
  check?: (s: ReturnType<typeof parse>) => void;
}[] = [
  {
    what: "a string counter costs that counter",
    params: [["block.0.name", "vda"], ["block.0.rd.bytes", "lots"], ["block.0.wr.bytes", 5n]],
    skipped: { type: 1 },
    check: (s) => deepStrictEqual(s.groups.blocks[0]?.values, { "wr.bytes": 5n }),
  },
  {
    what: "a boolean, a double and a negative llong where counts belong",
    params: [["cpu.time", true], ["cpu.user", 0.5], ["cpu.system", -5n], ["balloon.rss", 1n]],
    skipped: { type: 2, range: 1 },
    check: (s) => deepStrictEqual([s.groups.cpu, s.groups.balloon], [{}, { rss: 1n }]),
  },
  {
    what: "a KiB value that would not fit 64 bits in bytes",
    params: [["balloon.current", 18446744073709551615n], ["balloon.major_fault", 1n << 63n]],
    skipped: { range: 1 },
    check: (s) => deepStrictEqual(s.groups.balloon, { major_fault: 1n << 63n }),
  },
  {
    what: "a device without a name is skipped whole",
    params: [["net.0.rx.bytes", 1n], ["net.1.name", "vnet1"], ["net.1.rx.bytes", 2n]],
    skipped: { unnamed: 1 },
    check: (s) => deepStrictEqual(s.groups.nets.map((n) => n.name), ["vnet1"]),
  },
  {
    what: "a name that is not a string, or empty",
    params: [["block.0.name", 7], ["block.1.name", ""], ["block.1.rd.reqs", 1n]],
    skipped: { type: 1, range: 1, unnamed: 2 },
    check: (s) => deepStrictEqual(s.groups.blocks, []),
  },
  {
    what: "a path over the label limit is dropped, the disk kept",
    params: [["block.0.name", "vda"], ["block.0.path", "x".repeat(5000)], ["block.0.errors", 0n]],
    skipped: { range: 1 },
    check: (s) =>
      deepStrictEqual(s.groups.blocks, [{ index: 0, name: "vda", values: { errors: 0n } }]),
  },
  {
    what: "two disks of one name: the first kept",
    params: [
      ["block.1.name", "vda"],
      ["block.1.rd.reqs", 2n],
      ["block.0.name", "vda"],
      ["block.0.rd.reqs", 1n],
    ],
    skipped: { duplicate: 1 },
    check: (s) => deepStrictEqual(s.groups.blocks.map((b) => b.values), [{ "rd.reqs": 1n }]),
  },
  {
    what: `a million interfaces claimed: ${MAX_DEVICES} kept`,
    params: [
      ["net.count", 1_000_000],
      ...Array.from({ length: 300 }, (_, i) => [`net.${i}.name`, `tap${i}`] as [string, string]),
      ["net.999999.rx.bytes", 1n],
    ],
    skipped: { too_many: 45 },
    check: (s) => {
      strictEqual(s.groups.nets.length, MAX_DEVICES);
      strictEqual(s.problems.length, 1);
    },
  },
  {
    what: "an index with a leading zero or beyond 32 bits is not a device field",
    params: [["block.01.name", "vdb"], ["block.99999999999.name", "vdc"]],
    skipped: {},
    check: (s) => deepStrictEqual(s.groups.blocks, []),
  },
];

Deno.test("parseDomainStats() skips each bad value alone, counting why", async (t) => {
  for (const c of HOSTILE) {
    await t.step(c.what, () => {
      const stats = parse(c.params);
      deepStrictEqual(stats.skipped, {
        type: 0,
        range: 0,
        unnamed: 0,
        duplicate: 0,
        too_many: 0,
        ...c.skipped,
      });
      c.check?.(stats);
    });
  }
});

Deno.test("libvirtState() and libvirtReason() name libvirt's codes", () => {
  const cases: [number, number, string | undefined, string | undefined][] = [
    [1, 1, "running", "booted"],
    [3, 5, "paused", "io_error"],
    [3, 1, "paused", "user"],
    [5, 2, "shutoff", "destroyed"],
    [6, 1, "crashed", "panicked"],
    [7, 0, "pmsuspended", "unknown"],
    [3, 99, "paused", "99"],
    [8, 0, undefined, undefined],
    [-1, 0, undefined, undefined],
  ];
  for (const [state, reason, name, reasonName] of cases) {
    const named = libvirtState(state);
    strictEqual(named, name);
    if (named !== undefined) strictEqual(libvirtReason(named, reason), reasonName);
  }
});
