import { deepStrictEqual } from "node:assert/strict";
import type { VmEntry } from "../../src/config/vm_config.ts";
import { resolveVmNames, type VmCandidate } from "../../src/discovery/vm_names.ts";

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
