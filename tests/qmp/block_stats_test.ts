import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { parseBlockStats } from "../../src/qmp/block_stats.ts";
import { MAX_PROBLEMS, type ReplyProblem } from "../../src/qmp/reply_problems.ts";

const STATS = {
  rd_bytes: 1024,
  rd_operations: 2,
  rd_total_time_ns: 300,
  wr_bytes: 4096,
  wr_operations: 1,
  wr_total_time_ns: 500,
  flush_operations: 3,
  flush_total_time_ns: 70,
  failed_rd_operations: 1,
  failed_wr_operations: 2,
  failed_flush_operations: 4,
};

const ALL = {
  readBytes: 1024n,
  readRequests: 2n,
  readNs: 300n,
  writeBytes: 4096n,
  writeRequests: 1n,
  writeNs: 500n,
  flushRequests: 3n,
  flushNs: 70n,
  errors: 7n,
};

const CASES: {
  what: string;
  reply: unknown[];
  labels: string[];
  problems: string[];
  counters?: Record<string, bigint>;
}[] = [
  {
    what: "names a -blockdev disk by its device id in the QOM path",
    reply: [{ device: "", qdev: "/machine/peripheral/vd0/virtio-backend", stats: STATS }],
    labels: ["vd0"],
    problems: [],
    counters: ALL,
  },
  {
    what: "names a disk by a bare qdev id before the drive's name",
    reply: [{ device: "drive-scsi0", qdev: "scsi0", stats: STATS }],
    labels: ["scsi0"],
    problems: [],
  },
  {
    what: "names an anonymous device by its drive's name (-drive if=virtio)",
    reply: [{
      device: "virtio0",
      qdev: "/machine/peripheral-anon/device[1]/virtio-backend",
      stats: STATS,
    }],
    labels: ["virtio0"],
    problems: [],
  },
  {
    what: "names an anonymous device without a drive name by its QOM path",
    reply: [{
      device: "",
      qdev: "/machine/peripheral-anon/device[1]/virtio-backend",
      stats: STATS,
    }],
    labels: ["/machine/peripheral-anon/device[1]/virtio-backend"],
    problems: [],
  },
  {
    what: "skips a node no device uses, as no problem",
    reply: [{ device: "", "node-name": "#block-job", stats: STATS }, { stats: STATS }],
    labels: [],
    problems: [],
  },
  {
    what: "leaves out what is not an entry with stats",
    reply: [null, 7, [], { device: "a" }, { device: "b", stats: [] }],
    labels: [],
    problems: ["bad_value", "bad_value", "bad_value", "bad_value", "bad_value"],
  },
  {
    what: "leaves out an entry whose name is no short string",
    reply: [
      { device: 5, stats: STATS },
      { device: "x".repeat(129), stats: STATS },
      { qdev: "a\nb", stats: STATS },
    ],
    labels: [],
    problems: ["bad_value", "bad_value", "bad_value"],
  },
  {
    what: "keeps a disk with bad values, without them; errors only when all three are valid",
    reply: [{
      device: "d",
      stats: {
        ...STATS,
        rd_bytes: -1,
        wr_bytes: 1.5,
        rd_operations: "7",
        flush_operations: 18446744073709551616n,
        failed_flush_operations: null,
      },
    }],
    labels: ["d"],
    problems: ["bad_value", "bad_value", "bad_value", "bad_value", "bad_value"],
    counters: {
      readNs: 300n,
      writeRequests: 1n,
      writeNs: 500n,
      flushNs: 70n,
    },
  },
  {
    what: "has no errors and no problem where QEMU has no failed_* (before 2.5)",
    reply: [{
      device: "d",
      stats: Object.fromEntries(Object.entries(STATS).filter(([k]) => !k.startsWith("failed"))),
    }],
    labels: ["d"],
    problems: [],
    counters: Object.fromEntries(Object.entries(ALL).filter(([k]) => k !== "errors")),
  },
  {
    what: "keeps u64 values exact",
    reply: [{ device: "d", stats: { rd_bytes: 18446744073709551615n } }],
    labels: ["d"],
    problems: Array(7).fill("bad_value"),
    counters: { readBytes: 18446744073709551615n },
  },
  {
    what: "keeps the first of two disks with one label",
    reply: [
      { device: "d", stats: STATS },
      { device: "", qdev: "d", stats: { ...STATS, rd_bytes: 1 } },
    ],
    labels: ["d"],
    problems: ["duplicate"],
    counters: ALL,
  },
];

Deno.test("parseBlockStats() names disks and leaves out only what is wrong", () => {
  for (const c of CASES) {
    const { devices, problems } = parseBlockStats(c.reply, { maxDevices: 256 });
    deepStrictEqual(devices.map((d) => d.device), c.labels, c.what);
    deepStrictEqual(problems.map((p) => p.reason), c.problems, c.what);
    if (c.counters !== undefined) deepStrictEqual(devices[0]?.counters, c.counters, c.what);
  }
});

Deno.test("parseBlockStats() keeps at most maxDevices disks, after the filter", () => {
  const reply = Array.from({ length: 300 }, (_, i) => ({ device: `d${i}`, stats: STATS }));
  const capped = parseBlockStats(reply, { maxDevices: 256 });
  deepStrictEqual(capped.devices.length, 256);
  deepStrictEqual(counts(capped.problems), { too_many: 44 });
  const filtered = parseBlockStats(reply, {
    maxDevices: 256,
    accept: (device) => device.endsWith("7"),
  });
  deepStrictEqual(filtered.devices.length, 30);
  deepStrictEqual(filtered.problems, []);
});

/** Each reason's count over a problem list. */
function counts(problems: readonly ReplyProblem[]): Record<string, number> {
  const byReason: Record<string, number> = {};
  for (const p of problems) byReason[p.reason] = (byReason[p.reason] ?? 0) + (p.count ?? 1);
  return byReason;
}

Deno.test("parseBlockStats() counts a hostile reply's problems but keeps few of them", () => {
  // 1 MiB of `{"qdev":"a","stats":{}}`: one disk with 8 bad counters, and 43689 repeats.
  const reply = Array.from({ length: 43690 }, () => ({ qdev: "a", stats: {} }));
  const { devices, problems } = parseBlockStats(reply, { maxDevices: 256 });
  deepStrictEqual(devices.map((d) => d.device), ["a"]);
  deepStrictEqual(counts(problems), { bad_value: 8, duplicate: 43689 });
  ok(problems.length <= MAX_PROBLEMS + 2, `${problems.length} problems kept`);
  // Past the cap, an entry costs one problem, its counters are not read.
  const many = Array.from({ length: 1000 }, (_, i) => ({ device: `d${i}`, stats: {} }));
  const capped = parseBlockStats(many, { maxDevices: 2 });
  deepStrictEqual(counts(capped.problems), { bad_value: 16, too_many: 998 });
  ok(capped.problems.length <= MAX_PROBLEMS + 2);
});

Deno.test("parseBlockStats() refuses a reply that is not an array", () => {
  for (const reply of [null, {}, "x", 1]) {
    throws(() => parseBlockStats(reply, { maxDevices: 1 }), TypeError);
  }
});
