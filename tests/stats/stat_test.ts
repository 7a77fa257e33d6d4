import assert from "node:assert/strict";
import { compatFamilies } from "../../src/naming/compat.ts";
import { CATALOG, catalogEntry } from "../../src/stats/catalog.ts";
import {
  type KvmStat,
  statKey,
  StatSet,
  type StatSource,
  untypedStat,
} from "../../src/stats/stat.ts";
import { libvirtStatType, typeFromMode, typeFromSchema } from "../../src/stats/stat_type.ts";

const BASE: KvmStat = {
  level: "vm",
  vm: { dir: "100-1", domain: "a" },
  vcpu: undefined,
  name: "exits",
  type: untypedStat(),
  value: 1n,
  source: "debugfs",
};

Deno.test("statKey() tells stats apart by level, VM dir, vCPU and name only", async (t) => {
  const cases: { name: string; other: Partial<KvmStat>; same: boolean }[] = [
    { name: "another source", other: { source: "qmp", value: 2n }, same: true },
    {
      name: "another domain label, same dir",
      other: { vm: { dir: "100-1", domain: "b" } },
      same: true,
    },
    { name: "another dir", other: { vm: { dir: "100-2", domain: "a" } }, same: false },
    { name: "another level", other: { level: "host", vm: undefined }, same: false },
    { name: "a vCPU", other: { level: "vcpu", vcpu: "0" }, same: false },
    { name: "another name", other: { name: "exits2" }, same: false },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.equal(statKey(BASE) === statKey({ ...BASE, ...c.other }), c.same);
    });
  }
});

Deno.test("StatSet keeps the first stat of an identity (debugfs before QMP)", () => {
  const set = new StatSet();
  assert.equal(set.add(BASE), true);
  assert.equal(set.add({ ...BASE, source: "qmp", value: 9n }), false);
  const other = new StatSet();
  other.add({ ...BASE, name: "pages_4k", source: "qmp" });
  other.add({ ...BASE, source: "qmp", value: 9n });
  set.addAll(other);
  assert.deepEqual(set.stats().map((s) => [s.name, s.value, s.source]), [
    ["exits", 1n, "debugfs"],
    ["pages_4k", 1n, "qmp"],
  ]);
  assert.equal(other.size, 0);
});

Deno.test("StatSet.addAll() takes the first set's stats, leaving that set empty and apart", () => {
  const first = new StatSet();
  first.add(BASE);
  const merged = new StatSet();
  merged.addAll(first);
  assert.equal(first.size, 0);
  // A collector still adding after the merge (past the deadline) does not change the merged set.
  first.add({ ...BASE, name: "late" });
  assert.deepEqual([...merged].map((s) => s.name), ["exits"]);
});

Deno.test("typeFromSchema() maps QEMU's types, booleans included", async (t) => {
  const cases: {
    type: "cumulative" | "instant" | "peak" | "log2-histogram" | "linear-histogram";
    unit?: "boolean";
    want: string;
  }[] = [
    { type: "cumulative", want: "cumulative" },
    { type: "instant", want: "instant" },
    { type: "instant", unit: "boolean", want: "boolean" },
    { type: "peak", want: "peak" },
    { type: "log2-histogram", want: "log2_hist" },
    { type: "linear-histogram", want: "linear_hist" },
  ];
  for (const c of cases) {
    await t.step(`${c.type} ${c.unit ?? ""}`, () => {
      const schema = {
        name: "x",
        type: c.type,
        base: 10,
        exponent: 0,
        ...(c.unit ? { unit: c.unit } : {}),
      };
      assert.equal(typeFromSchema(schema).kind, c.want);
    });
  }
});

Deno.test("typeFromMode() reads KVM's debugfs modes", async (t) => {
  const cases: [name: string, mode: number | undefined, want: string][] = [
    ["exits", 0o100644, "cumulative"],
    ["pages_4k", 0o100444, "instant"],
    ["max_mmu_rmap_size", 0o100444, "peak"],
    ["max_x", 0o100644, "peak"],
    ["x", undefined, "untyped"],
  ];
  for (const [name, mode, want] of cases) {
    await t.step(`${name} ${mode?.toString(8)}`, () => {
      assert.equal(typeFromMode(name, mode).kind, want);
    });
  }
});

Deno.test("libvirtStatType() takes the catalog's type, else libvirt's suffix and the name", async (t) => {
  const cases: [
    name: string,
    suffix: "cur" | "sum" | "max",
    boolean: boolean,
    want: [kind: string, unit: string | undefined, exponent: number, origin: string],
  ][] = [
    ["exits", "sum", false, ["cumulative", undefined, 0, "catalog"]],
    ["halt_wait_ns", "sum", false, ["cumulative", "seconds", -9, "catalog"]],
    ["blocking", "cur", true, ["boolean", "boolean", 0, "catalog"]],
    ["new_counter", "sum", false, ["cumulative", undefined, 0, "suffix"]],
    ["new_time_ns", "sum", false, ["cumulative", "seconds", -9, "suffix"]],
    ["new_gauge", "cur", false, ["instant", undefined, 0, "suffix"]],
    ["new_flag", "cur", true, ["boolean", "boolean", 0, "suffix"]],
    ["max_new_peak", "max", false, ["peak", undefined, 0, "suffix"]],
  ];
  for (const [name, suffix, boolean, want] of cases) {
    await t.step(`${name}.${suffix}`, () => {
      const type = libvirtStatType(name, suffix, boolean);
      assert.deepEqual([type.kind, type.unit, type.exponent, type.origin], want);
    });
  }
});

Deno.test("CATALOG names each stat once, with a one-sentence HELP", () => {
  assert.equal(new Set(CATALOG.map((e) => e.name)).size, CATALOG.length);
  for (const entry of CATALOG) {
    assert.match(entry.help, /^[A-Z][^.]*\.$/, entry.name);
    assert.equal(catalogEntry(entry.name), entry);
  }
});

Deno.test("compatFamilies() skips histograms and keeps the first of two equal series", () => {
  const families = compatFamilies([
    { ...BASE, level: "vcpu", vcpu: "0", name: "tsc-offset", value: -1n },
    { ...BASE, level: "vcpu", vcpu: "0", name: "tsc_offset", value: 5n },
    { ...BASE, name: "halt_wait_hist", value: { buckets: [1n], sum: undefined }, source: "qmp" },
  ], { kvmdebugDir: "/d" });
  assert.deepEqual(families.map((f) => [f.name, f.samples.length, f.samples[0]!.value]), [
    ["kvm_stat_vcpu_tsc_offset_count", 1, -1n],
  ]);
});

/** Which sources supplied VM "a"'s and VM "b"'s `exits`, and the HELP the family must have. */
const COMPAT_HELP: { sources: [StatSource, StatSource | undefined]; help: string }[] = [
  { sources: ["debugfs", "debugfs"], help: "exits count from /d" },
  { sources: ["qmp", "qmp"], help: "exits count from qmp" },
  { sources: ["libvirt", undefined], help: "exits count from libvirt" },
  { sources: ["qmp", "libvirt"], help: "exits count from qmp, libvirt" },
  { sources: ["debugfs", "qmp"], help: "exits count from /d, qmp" },
];

for (const { sources, help } of COMPAT_HELP) {
  Deno.test(
    `compatFamilies() names the source of each series in HELP: ${
      sources.map((s) => s ?? "none").join(" + ")
    }`,
    () => {
      const stats = sources.flatMap((source, i) =>
        source === undefined ? [] : [{
          ...BASE,
          vm: { dir: `${i}-1`, domain: ["a", "b"][i]! },
          name: "exits",
          value: 1n,
          source,
        }]
      );
      const families = compatFamilies(stats, { kvmdebugDir: "/d" });
      assert.deepEqual(families.map((f) => [f.name, f.help]), [["kvm_stat_exits_count", help]]);
    },
  );
}
