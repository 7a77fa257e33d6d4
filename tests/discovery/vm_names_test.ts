import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import type { VmEntry } from "../../src/config/vm_config.ts";
import { GLOBAL_DOMAIN, resolveVmNames, type VmCandidate } from "../../src/discovery/vm_names.ts";

function entry(name: string, fields: Partial<VmEntry>): VmEntry {
  return { name, labels: {}, ...fields };
}

const CASES: {
  what: string;
  vms: VmCandidate[];
  entries: VmEntry[];
  onlyListed?: boolean;
  expected: [dir: string, domain: string, source: string][];
}[] = [
  {
    what: "config by dir wins over config by pid and cmdline",
    vms: [{ dir: "10-1", pid: 10, cmdlineName: "cmd" }],
    entries: [entry("by-pid", { pid: 10 }), entry("by-dir", { kvmDebugDir: "10-1" })],
    expected: [["10-1", "by-dir", "config"]],
  },
  {
    what: "config by pid wins over cmdline",
    vms: [{ dir: "10-1", pid: 10, cmdlineName: "cmd" }],
    entries: [entry("by-pid", { pid: 10 })],
    expected: [["10-1", "by-pid", "config"]],
  },
  {
    what: "cmdline, then dir",
    vms: [{ dir: "10-1", pid: 10, cmdlineName: "cmd" }, {
      dir: "11-1",
      pid: 11,
      cmdlineName: undefined,
    }],
    entries: [],
    expected: [["10-1", "cmd", "cmdline"], ["11-1", "11-1", "dir"]],
  },
  {
    what: "the later dir (numeric order) of two equal names gets @PID-FD",
    vms: [{ dir: "100-1", pid: 100, cmdlineName: "web" }, {
      dir: "99-1",
      pid: 99,
      cmdlineName: "web",
    }],
    entries: [],
    expected: [["99-1", "web", "cmdline"], ["100-1", "web@100-1", "cmdline"]],
  },
  {
    what: "a config name and a cmdline name that collide",
    vms: [{ dir: "1-1", pid: 1, cmdlineName: "db" }, { dir: "2-1", pid: 2, cmdlineName: "x" }],
    entries: [entry("db", { kvmDebugDir: "2-1" })],
    expected: [["1-1", "db", "cmdline"], ["2-1", "db@2-1", "config"]],
  },
  {
    what: "x@60030-1, x, x: the second x gets a further suffix, the VM called x@60030-1 keeps it",
    vms: [
      { dir: "60040-1", pid: 60040, cmdlineName: "x@60030-1" },
      { dir: "60000-1", pid: 60000, cmdlineName: "x" },
      { dir: "60030-1", pid: 60030, cmdlineName: "x" },
    ],
    entries: [],
    expected: [
      ["60000-1", "x", "cmdline"],
      ["60030-1", "x@60030-1~2", "cmdline"],
      ["60040-1", "x@60030-1", "cmdline"],
    ],
  },
  {
    what: "the suffix counts up past every name taken",
    vms: [
      { dir: "1-1", pid: 1, cmdlineName: "x" },
      { dir: "2-1", pid: 2, cmdlineName: "x" },
      { dir: "3-1", pid: 3, cmdlineName: "x@2-1" },
      { dir: "4-1", pid: 4, cmdlineName: "x@2-1~2" },
    ],
    entries: [],
    expected: [
      ["1-1", "x", "cmdline"],
      ["2-1", "x@2-1~3", "cmdline"],
      ["3-1", "x@2-1", "cmdline"],
      ["4-1", "x@2-1~2", "cmdline"],
    ],
  },
  {
    what: "no VM may be called global",
    vms: [{ dir: "1-1", pid: 1, cmdlineName: "global" }],
    entries: [],
    expected: [["1-1", "global@1-1", "cmdline"]],
  },
  {
    what: "only-listed drops unlisted VMs",
    vms: [{ dir: "1-1", pid: 1, cmdlineName: "a" }, { dir: "2-1", pid: 2, cmdlineName: "b" }],
    entries: [entry("listed", { pid: 2 })],
    onlyListed: true,
    expected: [["2-1", "listed", "config"]],
  },
];

Deno.test("resolveVmNames() names VMs by config, cmdline, then dir, without duplicates", async (t) => {
  for (const c of CASES) {
    await t.step(c.what, () => {
      const named = resolveVmNames(c.vms, {
        config: { entries: c.entries },
        onlyListed: c.onlyListed ?? false,
      });
      deepStrictEqual(named.map((vm) => [vm.dir, vm.domain, vm.nameSource]), c.expected);
    });
  }
});

/** Names that collide often: plain, "global", and ones shaped like the renamed forms. */
const NAME = fc.oneof(
  fc.constantFrom("x", "y", GLOBAL_DOMAIN, "x@1-1", "x@2-1", "x@2-1~2", "y@1-2", "1-1", "2-1"),
  fc.string({ minLength: 1, maxLength: 6 }),
);
const DIR = fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }));
const CANDIDATES = fc.uniqueArray(
  fc.record({ dir: DIR, cmdlineName: fc.option(NAME, { nil: undefined }) }),
  { selector: (c) => c.dir.join("-"), maxLength: 12 },
).map((cs) =>
  cs.map((c): VmCandidate => ({
    dir: c.dir.join("-"),
    pid: c.dir[0],
    cmdlineName: c.cmdlineName,
  }))
);
/** vm.yaml entries as validation lets them be: no two for one dir, no two for one pid alone. */
const ENTRIES = fc.uniqueArray(
  fc.record({ name: NAME, byDir: fc.boolean(), dir: DIR }),
  { selector: (e) => e.byDir ? e.dir.join("-") : String(e.dir[0]), maxLength: 4 },
).map((es) =>
  es.map(({ name, byDir, dir }) =>
    entry(name, byDir ? { kvmDebugDir: dir.join("-") } : { pid: dir[0] })
  )
);

/** The name a VM asks for, by the documented order, computed apart from the code under test. */
function wantedName(vm: VmCandidate, entries: readonly VmEntry[]): string {
  const entry = entries.find((e) => e.kvmDebugDir === vm.dir) ??
    entries.find((e) => e.pid === vm.pid);
  return entry?.name ?? vm.cmdlineName ?? vm.dir;
}

Deno.test("resolveVmNames() gives unique, stable domains to any set of names (property)", () => {
  fc.assert(
    fc.property(CANDIDATES, ENTRIES, fc.boolean(), (vms, entries, onlyListed) => {
      const options = { config: { entries }, onlyListed };
      const named = resolveVmNames(vms, options);
      const domains = named.map((vm) => vm.domain);
      strictEqual(new Set(domains).size, domains.length, "every domain is unique");
      ok(!domains.includes(GLOBAL_DOMAIN), "no VM is called global");
      // Stable: the same set, found in another order, gives the same names.
      const again = resolveVmNames([...vms].reverse(), options);
      deepStrictEqual(
        again.map((vm) => [vm.dir, vm.domain]),
        named.map((vm) => [vm.dir, vm.domain]),
      );
      const wanted = named.map((vm) => wantedName(vm, entries));
      named.forEach((vm, i) => {
        const name = wanted[i]!;
        const unique = name !== GLOBAL_DOMAIN && wanted.filter((w) => w === name).length === 1;
        if (unique) strictEqual(vm.domain, name, "a VM with a unique name keeps it");
        if (vm.domain !== name) {
          ok(vm.domain.startsWith(`${name}@${vm.dir}`), `${vm.domain} is ${name}@${vm.dir}...`);
          strictEqual(vm.renamedFrom, name);
        }
      });
    }),
    { numRuns: 2000 },
  );
});
