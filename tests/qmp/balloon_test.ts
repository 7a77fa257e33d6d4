import { deepStrictEqual, throws } from "node:assert/strict";
import {
  balloonPathIn,
  parseGuestStats,
  parsePollingInterval,
  parseQueryBalloon,
} from "../../src/qmp/balloon.ts";

Deno.test("parseQueryBalloon() reads actual as a u64 and refuses anything else", () => {
  deepStrictEqual(parseQueryBalloon({ actual: 2147483648 }), 2147483648n);
  deepStrictEqual(parseQueryBalloon({ actual: 18446744073709551615n }), 18446744073709551615n);
  for (const reply of [null, [], {}, { actual: -1 }, { actual: "1" }, { actual: 1.5 }]) {
    throws(() => parseQueryBalloon(reply), TypeError, JSON.stringify(reply));
  }
});

const LISTINGS: { what: string; reply: unknown[]; path: string | undefined }[] = [
  {
    what: "finds a virtio-balloon-pci",
    reply: [{ name: "type", type: "string" }, { name: "b0", type: "child<virtio-balloon-pci>" }],
    path: "/machine/peripheral/b0",
  },
  {
    what: "finds a CCW balloon and an anonymous one",
    reply: [{ name: "device[3]", type: "child<virtio-balloon-ccw>" }],
    path: "/machine/peripheral/device[3]",
  },
  {
    what: "ignores other devices, link properties and odd entries",
    reply: [
      null,
      { name: "vd0", type: "child<virtio-blk-pci>" },
      { name: "b", type: "link<virtio-balloon-pci>" },
      { name: "../x", type: "child<virtio-balloon-pci>" },
      { name: 1, type: "child<virtio-balloon-pci>" },
    ],
    path: undefined,
  },
];

Deno.test("balloonPathIn() finds the balloon in a qom-list reply", () => {
  for (const c of LISTINGS) {
    deepStrictEqual(balloonPathIn("/machine/peripheral", c.reply), c.path, c.what);
  }
  throws(() => balloonPathIn("/machine/peripheral", {}), TypeError);
});

Deno.test("parsePollingInterval() reads a u64", () => {
  deepStrictEqual(parsePollingInterval(0), 0n);
  deepStrictEqual(parsePollingInterval(5), 5n);
  for (const reply of [-1, "5", null]) throws(() => parsePollingInterval(reply), TypeError);
});

const GUEST: {
  what: string;
  reply: unknown;
  stats: Record<string, bigint>;
  problems: number;
}[] = [
  {
    what: "maps QEMU's stat names, drops what the guest does not report",
    reply: {
      stats: {
        "stat-total-memory": 4096,
        "stat-available-memory": 3072,
        "stat-free-memory": 1024,
        "stat-disk-caches": 512,
        "stat-major-faults": 3,
        "stat-minor-faults": 30,
        "stat-swap-in": 18446744073709551615n,
        "stat-swap-out": -1,
        "stat-htlb-pgalloc": 0,
      },
      "last-update": 1700000000,
    },
    stats: {
      total: 4096n,
      available: 3072n,
      free: 1024n,
      diskCaches: 512n,
      majorFaults: 3n,
      minorFaults: 30n,
      lastUpdate: 1700000000n,
    },
    problems: 0,
  },
  {
    what: "keeps nothing until the guest first reports",
    reply: { stats: { "stat-free-memory": 1024 }, "last-update": 0 },
    stats: {},
    problems: 0,
  },
  {
    what: "leaves out a bad value with a problem",
    reply: { stats: { "stat-free-memory": "lots", "stat-disk-caches": 1 }, "last-update": 9 },
    stats: { diskCaches: 1n, lastUpdate: 9n },
    problems: 1,
  },
];

Deno.test("parseGuestStats() reads the guest's memory stats", () => {
  for (const c of GUEST) {
    const { stats, problems } = parseGuestStats(c.reply);
    deepStrictEqual(stats, c.stats, c.what);
    deepStrictEqual(problems.length, c.problems, c.what);
  }
  for (const reply of [null, {}, { stats: {} }, { stats: [], "last-update": 1 }]) {
    throws(() => parseGuestStats(reply), TypeError, JSON.stringify(reply));
  }
});
