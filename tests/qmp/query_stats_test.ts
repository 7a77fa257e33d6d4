import { deepStrictEqual, throws } from "node:assert";
import { parseQmpJson } from "../../src/qmp/qmp_client.ts";
import {
  parseCpusFast,
  parseQueryStats,
  parseStatsSchemas,
  type StatsResult,
  type StatValue,
} from "../../src/qmp/query_stats.ts";
import type { StatSchema } from "../../src/stats/stat.ts";

const U64_MAX = 18446744073709551615n;

/**
 * A reply shaped like QEMU 8+ on a KVM host (names from the kernel, values illustrative): as in
 * QEMU's accel/kvm/kvm-all.c, `base` is only present when `exponent` is non-zero.
 */
const REAL_SCHEMAS_LINE = `{"return": [` +
  `{"provider": "kvm", "target": "vm", "stats": [` +
  `{"name": "max_mmu_page_hash_collisions", "type": "peak", "exponent": 0},` +
  `{"name": "pages_4k", "type": "instant", "exponent": 0},` +
  `{"name": "remote_tlb_flush", "type": "cumulative", "exponent": 0}]},` +
  `{"provider": "kvm", "target": "vcpu", "stats": [` +
  `{"name": "guest_mode", "type": "instant", "unit": "boolean", "exponent": 0},` +
  `{"name": "halt_wait_hist", "type": "log2-histogram", "unit": "seconds", "exponent": -9, "base": 10},` +
  `{"name": "halt_poll_fail_hist", "type": "linear-histogram", "unit": "seconds", "exponent": -9, "base": 10, "bucket-size": 1000},` +
  `{"name": "halt_poll_fail_ns", "type": "cumulative", "unit": "seconds", "exponent": -9, "base": 10},` +
  `{"name": "exits", "type": "cumulative", "exponent": 0}]}` +
  `], "id": "kvm_exporter-2"}`;

function schemaReply(provider: string, target: string, stats: unknown[]): unknown[] {
  return [{ provider, target, stats }];
}

Deno.test("parseStatsSchemas() reads schemas", async (t) => {
  const cases: {
    name: string;
    reply: unknown;
    vm: [string, StatSchema][];
    vcpu: [string, StatSchema][];
  }[] = [
    { name: "empty reply (TCG, no kvm provider)", reply: [], vm: [], vcpu: [] },
    {
      name: "real QEMU line with every type and unit",
      reply: (parseQmpJson(REAL_SCHEMAS_LINE) as { return: unknown }).return,
      vm: [
        ["max_mmu_page_hash_collisions", {
          name: "max_mmu_page_hash_collisions",
          type: "peak",
          base: 10,
          exponent: 0,
        }],
        ["pages_4k", { name: "pages_4k", type: "instant", base: 10, exponent: 0 }],
        ["remote_tlb_flush", {
          name: "remote_tlb_flush",
          type: "cumulative",
          base: 10,
          exponent: 0,
        }],
      ],
      vcpu: [
        ["guest_mode", {
          name: "guest_mode",
          type: "instant",
          unit: "boolean",
          base: 10,
          exponent: 0,
        }],
        ["halt_wait_hist", {
          name: "halt_wait_hist",
          type: "log2-histogram",
          unit: "seconds",
          base: 10,
          exponent: -9,
        }],
        ["halt_poll_fail_hist", {
          name: "halt_poll_fail_hist",
          type: "linear-histogram",
          unit: "seconds",
          base: 10,
          exponent: -9,
          bucketSize: 1000,
        }],
        ["halt_poll_fail_ns", {
          name: "halt_poll_fail_ns",
          type: "cumulative",
          unit: "seconds",
          base: 10,
          exponent: -9,
        }],
        ["exits", { name: "exits", type: "cumulative", base: 10, exponent: 0 }],
      ],
    },
    {
      name: "base omitted when exponent is 0 defaults to 10",
      reply: schemaReply("kvm", "vm", [{ name: "exits", type: "cumulative", exponent: 0 }]),
      vm: [["exits", { name: "exits", type: "cumulative", base: 10, exponent: 0 }]],
      vcpu: [],
    },
    {
      name: "base 2 (IEC prefix)",
      reply: schemaReply("kvm", "vm", [
        { name: "mem", type: "instant", unit: "bytes", base: 2, exponent: 10 },
      ]),
      vm: [["mem", { name: "mem", type: "instant", unit: "bytes", base: 2, exponent: 10 }]],
      vcpu: [],
    },
    {
      name: "cycles unit",
      reply: schemaReply("kvm", "vcpu", [
        { name: "c", type: "cumulative", unit: "cycles", base: 10, exponent: 0 },
      ]),
      vm: [],
      vcpu: [["c", { name: "c", type: "cumulative", unit: "cycles", base: 10, exponent: 0 }]],
    },
    {
      name: "other providers and unknown targets are dropped",
      reply: [
        {
          provider: "cryptodev",
          target: "cryptodev",
          stats: [{ name: "x", type: "cumulative", exponent: 0 }],
        },
        {
          provider: "kvm",
          target: "future",
          stats: [{ name: "y", type: "cumulative", exponent: 0 }],
        },
      ],
      vm: [],
      vcpu: [],
    },
    {
      name: "unknown type or unit drops only that statistic",
      reply: schemaReply("kvm", "vcpu", [
        { name: "a", type: "sliding-average", base: 10, exponent: 0 },
        { name: "b", type: "instant", unit: "joules", base: 10, exponent: 0 },
        { name: "c", type: "instant", base: 10, exponent: 0 },
      ]),
      vm: [],
      vcpu: [["c", { name: "c", type: "instant", base: 10, exponent: 0 }]],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const schemas = parseStatsSchemas(c.reply);
      deepStrictEqual([...schemas.vm], c.vm);
      deepStrictEqual([...schemas.vcpu], c.vcpu);
    });
  }
});

Deno.test("parseStatsSchemas() rejects bad shapes with a TypeError", async (t) => {
  const cases: { name: string; reply: unknown; message: RegExp }[] = [
    { name: "not an array", reply: { provider: "kvm" }, message: /expected an array, got object/ },
    { name: "null", reply: null, message: /expected an array, got null/ },
    { name: "entry not an object", reply: [42], message: /reply\[0\]: expected an object/ },
    { name: "missing target", reply: [{ provider: "kvm", stats: [] }], message: /\.target:/ },
    {
      name: "stats not an array",
      reply: [{ provider: "kvm", target: "vm", stats: {} }],
      message: /reply\[0\]\.stats: expected an array/,
    },
    {
      name: "name not a string",
      reply: schemaReply("kvm", "vm", [{ name: 1, type: "cumulative", exponent: 0 }]),
      message: /stats\[0\]\.name: expected a string, got number 1/,
    },
    {
      name: "missing exponent",
      reply: schemaReply("kvm", "vm", [{ name: "exits", type: "cumulative" }]),
      message: /stats\[0\]\.exponent: expected an integer, got undefined/,
    },
    {
      name: "fractional base",
      reply: schemaReply("kvm", "vm", [{ name: "e", type: "cumulative", exponent: 0, base: 1.5 }]),
      message: /\.base: expected an integer/,
    },
    {
      name: "negative bucket-size",
      reply: schemaReply("kvm", "vcpu", [
        { name: "h", type: "linear-histogram", exponent: 0, "bucket-size": -1 },
      ]),
      message: /\.bucket-size: expected a non-negative integer, got -1/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      throws(() => parseStatsSchemas(c.reply), (e: unknown) => {
        return e instanceof TypeError && c.message.test(e.message) && !e.message.includes("\n");
      });
    });
  }
});

Deno.test("parseQueryStats() reads values", async (t) => {
  const cases: { name: string; reply: unknown; want: StatsResult[] }[] = [
    { name: "empty reply (TCG, no kvm provider)", reply: [], want: [] },
    {
      name: "vm result without qom-path",
      reply: [{
        provider: "kvm",
        stats: [{ name: "remote_tlb_flush", value: 17 }, { name: "pages_4k", value: 0 }],
      }],
      want: [{
        stats: new Map<string, StatValue>([["remote_tlb_flush", s(17n)], ["pages_4k", s(0n)]]),
      }],
    },
    {
      name: "vcpu results with qom-path, histogram and booleans",
      reply: [
        {
          provider: "kvm",
          "qom-path": "/machine/unattached/device[0]",
          stats: [
            { name: "exits", value: 123 },
            { name: "guest_mode", value: false },
            { name: "halt_wait_hist", value: [0, 5, 9, 1] },
          ],
        },
        {
          provider: "kvm",
          "qom-path": "/machine/unattached/device[2]",
          stats: [{ name: "exits", value: 7 }, { name: "guest_mode", value: true }],
        },
      ],
      want: [
        {
          qomPath: "/machine/unattached/device[0]",
          stats: new Map<string, StatValue>([
            ["exits", s(123n)],
            ["guest_mode", s(0n)],
            ["halt_wait_hist", { kind: "histogram", buckets: [0n, 5n, 9n, 1n] }],
          ]),
        },
        {
          qomPath: "/machine/unattached/device[2]",
          stats: new Map<string, StatValue>([["exits", s(7n)], ["guest_mode", s(1n)]]),
        },
      ],
    },
    {
      name: "u64 max from a real reply line stays exact",
      reply: (parseQmpJson(
        `{"return": [{"provider": "kvm", "qom-path": "/machine/unattached/device[0]", ` +
          `"stats": [{"name": "exits", "value": 18446744073709551615}, ` +
          `{"name": "halt_poll_success_hist", "value": [9007199254740993, 1]}]}]}`,
      ) as { return: unknown }).return,
      want: [{
        qomPath: "/machine/unattached/device[0]",
        stats: new Map<string, StatValue>([
          ["exits", s(U64_MAX)],
          ["halt_poll_success_hist", {
            kind: "histogram",
            buckets: [9007199254740993n, 1n],
          }],
        ]),
      }],
    },
    {
      name: "other providers are dropped",
      reply: [{ provider: "cryptodev", stats: [{ name: "x", value: 1 }] }],
      want: [],
    },
    {
      name: "empty histogram",
      reply: [{ provider: "kvm", stats: [{ name: "h", value: [] }] }],
      want: [{ stats: new Map<string, StatValue>([["h", { kind: "histogram", buckets: [] }]]) }],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      deepStrictEqual(parseQueryStats(c.reply), c.want);
    });
  }
});

Deno.test("parseQueryStats() rejects bad shapes and values with a TypeError", async (t) => {
  const one = (value: unknown): unknown => [{ provider: "kvm", stats: [{ name: "exits", value }] }];
  const cases: { name: string; reply: unknown; message: RegExp }[] = [
    { name: "not an array", reply: "[]", message: /expected an array, got string/ },
    { name: "missing provider", reply: [{ stats: [] }], message: /reply\[0\]\.provider:/ },
    {
      name: "qom-path not a string",
      reply: [{ provider: "kvm", "qom-path": 3, stats: [] }],
      message: /reply\[0\]\.qom-path: expected a string/,
    },
    { name: "missing stats", reply: [{ provider: "kvm" }], message: /reply\[0\]\.stats:/ },
    {
      name: "stat without name",
      reply: [{ provider: "kvm", stats: [{ value: 1 }] }],
      message: /stats\[0\]\.name:/,
    },
    { name: "negative value", reply: one(-1), message: /"exits"\)\.value: -1 is not an unsigned/ },
    { name: "fractional value", reply: one(1.5), message: /1\.5 is not an unsigned integer/ },
    { name: "string value", reply: one("12"), message: /expected an unsigned integer, got string/ },
    { name: "null value", reply: one(null), message: /got null/ },
    {
      name: "rounded number (plain JSON.parse of a u64)",
      reply: JSON.parse(
        `[{"provider":"kvm","stats":[{"name":"exits","value":18446744073709551615}]}]`,
      ),
      message: /rounded by JSON\.parse/,
    },
    { name: "bigint beyond u64", reply: one(U64_MAX + 1n), message: /out of the unsigned 64-bit/ },
    { name: "negative bigint", reply: one(-5n), message: /out of the unsigned 64-bit/ },
    {
      name: "bad histogram bucket",
      reply: one([1, "2"]),
      message: /\("exits"\)\.value\[1\]: expected an unsigned integer/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      throws(() => parseQueryStats(c.reply), (e: unknown) => {
        return e instanceof TypeError && c.message.test(e.message) && !e.message.includes("\n");
      });
    });
  }
});

Deno.test("parseCpusFast() reads vCPUs", async (t) => {
  const cases: { name: string; reply: unknown; want: ReturnType<typeof parseCpusFast> }[] = [
    { name: "no vCPUs", reply: [], want: [] },
    {
      name: "real QEMU 7.2 reply line",
      reply: (parseQmpJson(
        `{"return": [{"thread-id": 7451, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, ` +
          `"qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}, ` +
          `{"thread-id": 7452, "props": {"core-id": 1, "thread-id": 0, "socket-id": 0}, ` +
          `"qom-path": "/machine/unattached/device[2]", "cpu-index": 1, "target": "x86_64"}], ` +
          `"id": "kvm_exporter-3"}`,
      ) as { return: unknown }).return,
      want: [
        { cpuIndex: 0, qomPath: "/machine/unattached/device[0]", threadId: 7451 },
        { cpuIndex: 1, qomPath: "/machine/unattached/device[2]", threadId: 7452 },
      ],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      deepStrictEqual(parseCpusFast(c.reply), c.want);
    });
  }
});

Deno.test("parseCpusFast() rejects bad shapes with a TypeError", async (t) => {
  const cpu = { "cpu-index": 0, "qom-path": "/machine/unattached/device[0]", "thread-id": 1 };
  const cases: { name: string; reply: unknown; message: RegExp }[] = [
    { name: "not an array", reply: {}, message: /expected an array, got object/ },
    {
      name: "entry is an array",
      reply: [[]],
      message: /reply\[0\]: expected an object, got an array/,
    },
    {
      name: "missing thread-id",
      reply: [{ ...cpu, "thread-id": undefined }],
      message: /reply\[0\]\.thread-id: expected an integer, got undefined/,
    },
    {
      name: "negative cpu-index",
      reply: [cpu, { ...cpu, "cpu-index": -1 }],
      message: /reply\[1\]\.cpu-index: expected a non-negative integer, got -1/,
    },
    {
      name: "qom-path not a string",
      reply: [{ ...cpu, "qom-path": null }],
      message: /reply\[0\]\.qom-path: expected a string, got null/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      throws(() => parseCpusFast(c.reply), (e: unknown) => {
        return e instanceof TypeError && c.message.test(e.message) && !e.message.includes("\n");
      });
    });
  }
});

function s(value: bigint): StatValue {
  return { kind: "scalar", value };
}
